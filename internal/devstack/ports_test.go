package devstack

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPortsAreKeptAcrossRestartsAndMoveOnlyWhenTaken(t *testing.T) {
	dir := t.TempDir()
	first, err := OpenPorts(dir)
	require.NoError(t, err)
	pg, moved, err := first.Port("postgres")
	require.NoError(t, err)
	require.Zero(t, moved)
	redis, _, err := first.Port("redis")
	require.NoError(t, err)
	require.NotEqual(t, pg, redis)

	// A restart: the same ports.
	again, err := OpenPorts(dir)
	require.NoError(t, err)
	got, moved, err := again.Port("postgres")
	require.NoError(t, err)
	require.Equal(t, pg, got)
	require.Zero(t, moved)

	// Someone else holds the redis port now: a new one, saved, and said so.
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(redis))
	require.NoError(t, err)
	defer ln.Close()
	got, moved, err = again.Port("redis")
	require.NoError(t, err)
	require.NotEqual(t, redis, got)
	require.Equal(t, redis, moved)
	third, err := OpenPorts(dir)
	require.NoError(t, err)
	require.Equal(t, got, third.ports["redis"], "the new port is the one kept")
}
