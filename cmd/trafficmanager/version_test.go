package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersionPrintsTheBuildAndGoVersion(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	require.NoError(t, root.Execute())
	require.True(t, strings.HasPrefix(out.String(), "trafficmanager "), out.String())
	require.Contains(t, out.String(), runtime.Version())

	out.Reset()
	root = newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"version", "--output", "json"})
	require.NoError(t, root.Execute())
	var b buildInfo
	require.NoError(t, json.Unmarshal(out.Bytes(), &b))
	require.Equal(t, runtime.Version(), b.Go)
	require.NotEmpty(t, b.Version)

	root = newRootCmd()
	root.SetArgs([]string{"version", "--output", "yaml"})
	require.Equal(t, exitUsage, exitCode(root.Execute()))
}

// The shell completion cobra generates covers our commands.
func TestCompletionScriptsNameTheCommands(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var out bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetArgs([]string{"completion", shell})
		require.NoError(t, root.Execute(), shell)
		require.Contains(t, out.String(), "trafficmanager", shell)
	}
}
