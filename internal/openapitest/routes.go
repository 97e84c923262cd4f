package openapitest

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
)

// NotYetServed marks a path of the document whose handlers have not landed
// yet; CheckRoutes reports it once they have, so the marker goes.
const NotYetServed = "x-not-yet-served"

// CheckRoutes compares a Gin router's routes with the document: every
// route must be documented and every documented operation served. skip
// lists path prefixes that are not API (the console's /ui/ pages). A Gin
// catch-all (*key) is covered by the documented paths under its prefix.
func CheckRoutes(d *Doc, ginRoutes gin.RoutesInfo, skip ...string) []string {
	var problems []string
	type ginRoute struct {
		method string
		re     *regexp.Regexp
		path   string
	}
	var served []ginRoute
	for _, r := range ginRoutes {
		if hasPrefix(r.Path, skip) {
			continue
		}
		served = append(served, ginRoute{r.Method, ginRegexp(r.Path), r.Path})
	}
	documented := map[string]bool{}
	for _, r := range d.routes {
		sample := samplePath(r.template)
		documented[r.method+" "+sample] = true
		pending := d.Spec.Paths.Value(r.template).Extensions[NotYetServed] == true
		found := false
		for _, g := range served {
			if g.method == r.method && g.re.MatchString(sample) {
				found = true
				break
			}
		}
		switch {
		case !found && !pending:
			problems = append(problems, fmt.Sprintf("%s: %s %s is documented but not served", d.Name, r.method, r.template))
		case found && pending:
			problems = append(problems, fmt.Sprintf("%s: %s %s is served now: drop %s from the document and check it against the code", d.Name, r.method, r.template, NotYetServed))
		}
	}
	for _, g := range served {
		found := false
		for key := range documented {
			method, sample, _ := strings.Cut(key, " ")
			if method == g.method && g.re.MatchString(sample) {
				found = true
				break
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("%s: %s %s is served but not in the OpenAPI document", d.Name, g.method, g.path))
		}
	}
	sort.Strings(problems)
	return problems
}

func hasPrefix(p string, prefixes []string) bool {
	for _, s := range prefixes {
		if strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}

// ginRegexp matches the paths a Gin route serves: :name one segment, *name
// the rest.
func ginRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteString("/")
		}
		switch {
		case strings.HasPrefix(seg, ":"):
			b.WriteString("[^/]+")
		case strings.HasPrefix(seg, "*"):
			b.WriteString(".*")
		default:
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(strings.Replace(b.String(), "/.*$", "(/.*)?$", 1))
}

// samplePath fills a template's parameters with a value of one segment.
func samplePath(template string) string {
	return paramRE.ReplaceAllString(template, "x")
}
