package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// `go tool task dev` runs the built binary: `go run` exits 1 whenever it
// received an interrupt, whatever its program did, so a clean Ctrl-C ended
// in `task: Failed to run task "dev": exit status 1`. The binary exits 0
// after a clean stop (TestDevStack).
func TestTheDevTaskRunsTheBuiltBinary(t *testing.T) {
	raw, err := os.ReadFile("../../Taskfile.yml")
	require.NoError(t, err)
	var tf struct {
		Tasks map[string]struct {
			Cmds []any `yaml:"cmds"`
		} `yaml:"tasks"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &tf))
	dev, ok := tf.Tasks["dev"]
	require.True(t, ok, "Taskfile.yml has a dev task")
	var runs bool
	for _, c := range dev.Cmds {
		s, ok := c.(string)
		if !ok {
			continue // - task: build
		}
		require.NotContains(t, s, "go run", "the dev task must not use go run")
		runs = runs || strings.Contains(s, "bin/trafficmanager dev")
	}
	require.True(t, runs, "the dev task runs bin/trafficmanager dev")
}
