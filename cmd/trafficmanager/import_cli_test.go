package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadImportTakesAnArrayOrOneObjectPerLine(t *testing.T) {
	array := `  [{"tenant":"a","service":"s","env":"prod","version":"v1","url":"https://x.example"},
	{"tenant":"b","service":"s","env":"prod","version":"v1","url":"https://y.example","active":false}]`
	lines := `{"tenant":"a","service":"s","env":"prod","version":"v1","url":"https://x.example"}

{"tenant":"b","service":"s","env":"prod","version":"v1","url":"https://y.example","active":false}
`
	for name, in := range map[string]string{"array": array, "lines": lines} {
		rs, err := readImport(strings.NewReader(in))
		require.NoError(t, err, name)
		require.Len(t, rs, 2, name)
		require.Equal(t, "b", rs[1].Tenant)
		require.NotNil(t, rs[1].Active)
		require.False(t, *rs[1].Active)
	}
	rs, err := readImport(strings.NewReader(" \n"))
	require.NoError(t, err)
	require.Empty(t, rs)

	_, err = readImport(strings.NewReader(`{"tenant":"a","color":"red"}`))
	require.ErrorContains(t, err, "route 1")
	_, err = readImport(strings.NewReader(`[{"tenant":"a"},`))
	require.ErrorContains(t, err, "JSON array")
}

func TestImportBatchesGroupsByTenantInFileOrder(t *testing.T) {
	var rs []importRoute
	for i := range 7 {
		rs = append(rs, importRoute{Tenant: []string{"a", "b"}[i%2], Version: string(rune('0' + i))})
	}
	bs := importBatches(rs, 3)
	var got [][]string
	for _, b := range bs {
		var vs []string
		for _, r := range b {
			vs = append(vs, r.Tenant+r.Version)
		}
		got = append(got, vs)
	}
	require.Equal(t, [][]string{{"a0", "a2", "a4"}, {"a6"}, {"b1", "b3", "b5"}}, got)
}
