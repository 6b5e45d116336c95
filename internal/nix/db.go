package nix

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DefaultStoreDB is the SQLite database of the local Nix store.
const DefaultStoreDB = "/nix/var/nix/db/db.sqlite"

// storeDBReadable reports whether the store's database can be read here
// (it can as root; other users go through the nix command).
func storeDBReadable(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// pathInfoDB answers PathInfo from the store's database, read-only: for a
// closure of thousands of paths this takes milliseconds where `nix
// path-info` takes a quarter of a second.
func pathInfoDB(ctx context.Context, dbPath string, paths []string) ([]PathInfo, error) {
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open store database: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open store database: %w", err)
	}
	defer conn.Close()
	// One transaction, so that the closure and its references are read from
	// one snapshot of the store.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS farm_roots (path TEXT PRIMARY KEY)`); err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	for _, p := range paths {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO farm_roots VALUES (?)`, p); err != nil {
			return nil, fmt.Errorf("read store database: %w", err)
		}
	}
	var found int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM ValidPaths v JOIN farm_roots r ON v.path = r.path`).Scan(&found); err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	if found != countDistinct(paths) {
		for _, p := range paths {
			var id int64
			if err := tx.QueryRowContext(ctx, `SELECT id FROM ValidPaths WHERE path = ?`, p).Scan(&id); err != nil {
				return nil, fmt.Errorf("%s: %w", p, ErrNotInStore)
			}
		}
	}
	const closure = `WITH RECURSIVE closure(id) AS (
		SELECT v.id FROM ValidPaths v JOIN farm_roots r ON v.path = r.path
		UNION SELECT f.reference FROM Refs f JOIN closure c ON f.referrer = c.id)`
	rows, err := tx.QueryContext(ctx, closure+` SELECT v.id, v.path, v.hash, v.narSize, coalesce(v.deriver, ''), coalesce(v.ca, '')
		FROM ValidPaths v JOIN closure c ON v.id = c.id`)
	if err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	byID := map[int64]*PathInfo{}
	var infos []*PathInfo
	for rows.Next() {
		var id int64
		var hash string
		var narSize sql.NullInt64
		pi := &PathInfo{}
		if err := rows.Scan(&id, &pi.Path, &hash, &narSize, &pi.Deriver, &pi.CA); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read store database: %w", err)
		}
		if pi.NarHash, err = dbHash(hash); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: %w", pi.Path, err)
		}
		pi.NarSize = uint64(narSize.Int64)
		byID[id] = pi
		infos = append(infos, pi)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	refs, err := tx.QueryContext(ctx, closure+` SELECT f.referrer, v.path FROM Refs f
		JOIN closure c ON f.referrer = c.id JOIN ValidPaths v ON v.id = f.reference`)
	if err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	defer refs.Close()
	for refs.Next() {
		var id int64
		var ref string
		if err := refs.Scan(&id, &ref); err != nil {
			return nil, fmt.Errorf("read store database: %w", err)
		}
		if pi := byID[id]; pi != nil {
			pi.References = append(pi.References, ref)
		}
	}
	if err := refs.Err(); err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	out := make([]PathInfo, len(infos))
	for i, pi := range infos {
		sort.Strings(pi.References)
		out[i] = *pi
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func countDistinct(paths []string) int {
	seen := map[string]bool{}
	for _, p := range paths {
		seen[p] = true
	}
	return len(seen)
}

// dbHash converts the store database's "sha256:<hex>" to "sha256:<nix32>".
func dbHash(h string) (string, error) {
	algo, digest, ok := strings.Cut(h, ":")
	if !ok || algo != "sha256" {
		return "", fmt.Errorf("unsupported hash %q in the store database", h)
	}
	switch len(digest) {
	case 64:
		b, err := hex.DecodeString(digest)
		if err != nil {
			return "", fmt.Errorf("malformed hash %q in the store database", h)
		}
		return "sha256:" + nixbase32.EncodeToString(b), nil
	case 52:
		return h, nil
	}
	return "", fmt.Errorf("malformed hash %q in the store database", h)
}
