// Package e2e holds end-to-end tests of the whole platform on real servers.
package e2e
