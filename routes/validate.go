package routes

import (
	"net/url"
	"strings"
)

// MaxURLLen is the longest URL a route may point at, in bytes.
const MaxURLLen = 2048

// Validate checks every part of the key, naming the first bad field.
func (k Key) Validate() error {
	if err := ValidateName("tenant", k.Tenant); err != nil {
		return err
	}
	if err := ValidateName("service", k.Service); err != nil {
		return err
	}
	if err := ValidateName("env", k.Env); err != nil {
		return err
	}
	return ValidateVersion(k.Version)
}

// ValidateName checks a tenant, service or env name: 1–63 characters of
// lowercase letters, digits and '-', starting and ending with a letter or digit.
func ValidateName(field, s string) error {
	if s == "" {
		return Invalid(field, "is required")
	}
	if len(s) > 63 {
		return Invalid(field, "must be at most 63 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return Invalid(field, "must be lowercase letters, digits and '-', starting and ending with a letter or digit")
		}
	}
	return nil
}

// ValidateVersion checks a version: 1–64 characters of letters, digits, '.', '_' and '-',
// except "." and "..", which are path segments no URL can carry (clients and
// proxies resolve them away), so such a route could never be read or changed.
func ValidateVersion(s string) error {
	if s == "" {
		return Invalid("version", "is required")
	}
	if s == "." || s == ".." {
		return Invalid("version", "must not be '.' or '..'")
	}
	if len(s) > 64 {
		return Invalid("version", "must be at most 64 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return Invalid("version", "must be letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// ValidateURL checks that s is an absolute http or https URL with a host and
// at most MaxURLLen bytes.
func ValidateURL(s string) error {
	if s == "" {
		return Invalid("url", "is required")
	}
	if len(s) > MaxURLLen {
		return Invalid("url", "must be at most 2048 bytes")
	}
	if !trimmed(s) || strings.ContainsAny(s, " \t\r\n") {
		return Invalid("url", "must not contain whitespace")
	}
	u, err := url.Parse(s)
	if err != nil {
		return Invalid("url", "is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Invalid("url", "must use the http or https scheme")
	}
	if u.Hostname() == "" {
		return Invalid("url", "must have a host")
	}
	return nil
}
