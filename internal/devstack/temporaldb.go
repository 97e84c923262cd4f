package devstack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// dbFromURL fills the connection fields of db from a PostgreSQL URL or DSN.
func dbFromURL(db *TemporalDB, url string) error {
	pc, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("Temporal cluster database: %w", err)
	}
	if strings.HasPrefix(pc.Host, "/") {
		return fmt.Errorf("Temporal cluster database: %s is a Unix socket; the Temporal server needs a TCP address", pc.Host)
	}
	db.Host, db.Port, db.User, db.Password = pc.Host, int(pc.Port), pc.User, pc.Password
	return nil
}

// shardsComment marks the temporal database with its shard count, which
// the server cannot change after the first start: a mismatch is reported
// here in a sentence instead of by the server at start-up.
const shardsComment = "trafficmanager: numHistoryShards="

// prepareTemporalDatabases creates the two databases when missing and
// brings their schemas to the version of the installed temporal-sql-tool
// (setup-schema and update-schema are no-ops on a current schema). It
// returns the shard count to run with.
func prepareTemporalDatabases(ctx context.Context, o TemporalClusterOptions, cfg TemporalClusterConfig, sqlTool string) (int, error) {
	db := cfg.DB
	conn, err := pgx.Connect(ctx, o.DatabaseURL)
	if err != nil {
		return 0, fmt.Errorf("Temporal cluster database: %w", err)
	}
	defer conn.Close(context.Background())
	var comment *string
	err = conn.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", db.Database).Scan(&comment)
	fresh := errors.Is(err, pgx.ErrNoRows)
	if err != nil && !fresh {
		return 0, fmt.Errorf("Temporal cluster database: %w", err)
	}
	shards := o.HistoryShards
	if !fresh && comment != nil {
		if s, ok := strings.CutPrefix(*comment, shardsComment); ok {
			had, _ := strconv.Atoi(s)
			if shards != 0 && shards != had {
				return 0, fmt.Errorf("the Temporal databases %s and %s were created with %d history shards and cannot change to %d: keep %d, or drop both databases to start over",
					db.Database, db.VisibilityDatabase, had, shards, had)
			}
			shards = had
		}
	}
	if shards == 0 {
		shards = DefaultHistoryShards
	}

	env := []string{"SQL_PLUGIN=postgres12", "SQL_HOST=" + db.Host, "SQL_PORT=" + strconv.Itoa(db.Port),
		"SQL_USER=" + db.User, "SQL_PASSWORD=" + db.Password}
	tool := func(database string, args ...string) error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := runEnv(rctx, "temporal-sql-tool", o.Log, nil, append(env, "SQL_DATABASE="+database), sqlTool, args...); err != nil {
			return fmt.Errorf("temporal-sql-tool %s (database %s): %w", args[0], database, err)
		}
		return nil
	}
	for _, d := range cfg.Schemas() {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", d.Database).Scan(&exists); err != nil {
			return 0, err
		}
		if !exists {
			// Connected to the URL's own database, which the user can reach
			// (the tool's default, "postgres", may not be).
			if err := tool(d.Database, "create-database", "--defaultdb", conn.Config().Database); err != nil {
				return 0, err
			}
		}
		if err := tool(d.Database, "setup-schema", "-v", "0.0"); err != nil {
			return 0, err
		}
		if err := tool(d.Database, "update-schema", "--schema-name", d.Schema); err != nil {
			return 0, err
		}
	}
	if err := forgetMembers(ctx, conn.Config(), db.Database); err != nil {
		return 0, err
	}
	if fresh || comment == nil {
		// Only a database without a mark gets one: the server records its
		// shard count on first start, and this is that start.
		if _, err := conn.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s%d'",
			pgx.Identifier{db.Database}.Sanitize(), shardsComment, shards)); err != nil {
			return 0, fmt.Errorf("mark Temporal database: %w", err)
		}
	}
	return shards, nil
}

// forgetMembers deletes the ring membership records of the previous run.
// The one server of this cluster is about to start, usually on new ports;
// left in place, the records of the last 20 s are bootstrap seeds it tries
// to join (30 s per attempt) before serving, and meanwhile its services
// answer "Not enough hosts to serve the request".
func forgetMembers(ctx context.Context, base *pgx.ConnConfig, database string) error {
	cc := base.Copy()
	cc.Database = database
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("Temporal cluster database %s: %w", database, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DELETE FROM cluster_membership"); err != nil {
		return fmt.Errorf("clear Temporal ring membership: %w", err)
	}
	return nil
}
