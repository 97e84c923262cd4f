package config

import (
	"strings"
	"testing"
)

func TestTheConsoleLinksToTheDevTemporalUIUnlessTold(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := Load(env(nil))
	if err != nil || c.TemporalUIURL != "http://127.0.0.1:8233" || c.ConsoleTrustForwardedProto {
		t.Fatalf("default: %q %v %v", c.TemporalUIURL, c.ConsoleTrustForwardedProto, err)
	}
	c, err = Load(env(map[string]string{"TM_TEMPORAL_UI_URL": "https://temporal.example.com", "TM_CONSOLE_TRUST_FORWARDED_PROTO": "on"}))
	if err != nil || c.TemporalUIURL != "https://temporal.example.com" || !c.ConsoleTrustForwardedProto {
		t.Fatalf("set: %q %v %v", c.TemporalUIURL, c.ConsoleTrustForwardedProto, err)
	}
	for _, bad := range []string{"javascript:alert(1)", "127.0.0.1:8233", "ftp://x"} {
		if _, err := Load(env(map[string]string{"TM_TEMPORAL_UI_URL": bad})); err == nil || !strings.Contains(err.Error(), "TM_TEMPORAL_UI_URL") {
			t.Errorf("%q: %v, want an error naming TM_TEMPORAL_UI_URL", bad, err)
		}
	}
}
