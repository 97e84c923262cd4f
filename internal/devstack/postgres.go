package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster running as a child process.
type Postgres struct {
	DSN     string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	Port    int
	DataDir string // absolute
	c       *child
}

// pgNotFound is the error when no server binaries are installed.
var pgNotFound = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin: run `go tool task setup` (apt-get install postgresql) or set TM_DATABASE_URL to use a running server")

// PostgresBinDir finds the directory holding initdb and postgres: the one of
// initdb on PATH, else the newest /usr/lib/postgresql/*/bin (Debian's layout).
func PostgresBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersionLess(dirs[j], dirs[i]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", pgNotFound
}

// pgVersionLess orders /usr/lib/postgresql/<version>/bin by version.
func pgVersionLess(a, b string) bool {
	va := strings.Split(filepath.Base(filepath.Dir(a)), ".")
	vb := strings.Split(filepath.Base(filepath.Dir(b)), ".")
	for i := 0; i < len(va) && i < len(vb); i++ {
		na, _ := strconv.Atoi(va[i])
		nb, _ := strconv.Atoi(vb[i])
		if na != nb {
			return na < nb
		}
	}
	return len(va) < len(vb)
}

// postgresAccount returns the credential to run initdb and postgres with:
// nil when not root; as root (which PostgreSQL refuses) the "postgres" OS
// user that the Debian package creates.
func postgresAccount() (cred *syscall.Credential, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, -1, -1, fmt.Errorf("PostgreSQL refuses to run as root and there is no \"postgres\" OS user to run it as: run `go tool task setup` (apt-get install postgresql creates the user), run as a non-root user, or set TM_DATABASE_URL")
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

// prepareDataDir creates dataDir and, when the server runs as another user
// (uid >= 0), gives that user the directory and the right to reach it.
func prepareDataDir(dataDir string, uid, gid int, log io.Writer) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create PostgreSQL data directory: %w", err)
	}
	if uid < 0 {
		return nil
	}
	// Every ancestor must be searchable by the server user: add o+x (search
	// only, no listing) where it is missing, e.g. on a 0700 home directory.
	for d := filepath.Dir(dataDir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !searchable(st, uid, gid) {
			fmt.Fprintf(log, "devstack: chmod o+x %s so the postgres user can reach %s\n", d, dataDir)
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("the postgres user cannot reach %s (%v): put the data directory elsewhere (TM_DEV_DATA_DIR) or set TM_DATABASE_URL", dataDir, err)
			}
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	st, err := os.Stat(dataDir)
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) == uid {
		return nil
	}
	return filepath.WalkDir(dataDir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func searchable(st os.FileInfo, uid, gid int) bool {
	perm := st.Mode().Perm()
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return perm&0o001 != 0
	}
	switch {
	case int(sys.Uid) == uid:
		return perm&0o100 != 0
	case int(sys.Gid) == gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// StartPostgres starts a private cluster in dataDir listening on
// 127.0.0.1:port, running initdb first when dataDir holds no cluster (so
// data survives restarts). It returns once the server accepts connections.
// Output of initdb and postgres goes to log (nil: discarded).
func StartPostgres(ctx context.Context, dataDir string, port int, log io.Writer) (*Postgres, error) {
	if log == nil {
		log = io.Discard
	}
	if err := checkPort(port, "PostgreSQL", "TM_DATABASE_URL"); err != nil {
		return nil, err
	}
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := postgresAccount()
	if err != nil {
		return nil, err
	}
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return nil, err
	}
	if err := prepareDataDir(dataDir, uid, gid, log); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := run(ictx, "initdb", log, cred, filepath.Join(bin, "initdb"),
			"-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
		cancel()
		if err != nil {
			return nil, fmt.Errorf("initdb %s failed: %w", dataDir, err)
		}
	}
	// The Unix socket lives in the data dir unless its path would exceed
	// the 107-byte limit of socket addresses.
	sockDir := dataDir
	if len(sockDir)+len("/.s.PGSQL.65535.lock") > 100 {
		sockDir = os.TempDir()
	}
	c, err := startChild("postgres", log, cred, filepath.Join(bin, "postgres"),
		"-D", dataDir, "-p", strconv.Itoa(port), "-k", sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=on",
		"-c", "max_connections=200",
		"-c", "shared_buffers=128MB",
		"-c", "logging_collector=off")
	if err != nil {
		return nil, err
	}
	p := &Postgres{
		DSN:     fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		Port:    port,
		DataDir: dataDir,
		c:       c,
	}
	err = waitFor(ctx, c, 30*time.Second, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, p.DSN)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		return conn.Ping(ctx)
	})
	if err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("PostgreSQL in %s: %w", dataDir, err)
	}
	return p, nil
}

// Stop shuts the server down: SIGINT (fast shutdown: disconnects clients,
// checkpoints), waits up to 10 s, then SIGKILLs the process group.
func (p *Postgres) Stop() error {
	p.c.stop(syscall.SIGINT, true, 10*time.Second)
	return nil
}
