package devstack

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster.
type Postgres struct {
	DSN string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	c   *child
}

// pgBinDir finds the server binaries: on PATH, else the newest
// /usr/lib/postgresql/*/bin (Debian's layout).
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found: run `go tool task setup` (apt-get install postgresql) or set TM_DATABASE_URL")
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// postgresCredential returns the account to run the server as: PostgreSQL
// refuses to run as root, so root runs it as the "postgres" user.
func postgresCredential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root, and PostgreSQL refuses root: a \"postgres\" user is needed (apt-get install postgresql creates it)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

// StartPostgres starts a cluster in dataDir on 127.0.0.1:port, creating it
// with initdb the first time (data survives restarts).
func StartPostgres(ctx context.Context, dataDir string, port int, log io.Writer) (*Postgres, error) {
	if !portFree(port) {
		return nil, fmt.Errorf("port %d is taken: stop what listens there or set TM_DATABASE_URL", port)
	}
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if uid >= 0 {
		if err := os.Chown(dataDir, uid, gid); err != nil {
			return nil, err
		}
		// The server user must be able to reach the data dir.
		for d := filepath.Dir(dataDir); d != "/" && d != "."; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, st.Mode().Perm()|0o011)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); os.IsNotExist(err) {
		initdb, err := startChild("initdb", log, cred, filepath.Join(bin, "initdb"),
			"-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
		if err != nil {
			return nil, err
		}
		<-initdb.done
		if initdb.err != nil {
			return nil, fmt.Errorf("initdb %s: %w (see the dev log)", dataDir, initdb.err)
		}
	}
	c, err := startChild("postgres", log, cred, filepath.Join(bin, "postgres"),
		"-D", dataDir, "-p", strconv.Itoa(port), "-k", dataDir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
		"-c", "shared_buffers=128MB", "-c", "logging_collector=off")
	if err != nil {
		return nil, err
	}
	p := &Postgres{DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), c: c}
	err = waitFor(ctx, c, 30*time.Second, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, p.DSN)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// Stop shuts the server down (fast shutdown), killing it after 10 s.
func (p *Postgres) Stop() error { return p.c.stop(syscall.SIGINT, 10*time.Second) }
