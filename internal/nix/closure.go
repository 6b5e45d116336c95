package nix

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ClosureSizes returns the closure of root (root and every path it
// references, transitively) as a map from store path to NAR size. It reads
// only what a closure comparison needs, which from the store's database
// (StoreDB) is several times faster than PathInfo. A root the store does
// not hold gives an error wrapping ErrNotInStore.
func (c *Client) ClosureSizes(ctx context.Context, root string) (map[string]uint64, error) {
	if c.StoreDB != "" && storeDBReadable(c.StoreDB) {
		sizes, err := closureSizesDB(ctx, c.StoreDB, root)
		if err == nil || errors.Is(err, ErrNotInStore) || ctx.Err() != nil {
			return sizes, err
		}
		// Not readable after all (see PathInfo): ask nix.
	}
	infos, err := c.PathInfo(ctx, root)
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]uint64, len(infos))
	for _, pi := range infos {
		sizes[pi.Path] = pi.NarSize
	}
	return sizes, nil
}

func closureSizesDB(ctx context.Context, dbPath, root string) (map[string]uint64, error) {
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open store database: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var rootID int64
	err = db.QueryRowContext(ctx, `SELECT id FROM ValidPaths WHERE path = ?`, root).Scan(&rootID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", root, ErrNotInStore)
	}
	if err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	// One statement: the closure is read from one snapshot of the store.
	rows, err := db.QueryContext(ctx, `WITH RECURSIVE closure(id) AS (
		SELECT ? UNION SELECT f.reference FROM Refs f JOIN closure c ON f.referrer = c.id)
		SELECT v.path, v.narSize FROM ValidPaths v JOIN closure c ON v.id = c.id`, rootID)
	if err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	defer rows.Close()
	sizes := map[string]uint64{}
	for rows.Next() {
		var p string
		var size sql.NullInt64
		if err := rows.Scan(&p, &size); err != nil {
			return nil, fmt.Errorf("read store database: %w", err)
		}
		sizes[p] = uint64(size.Int64)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read store database: %w", err)
	}
	return sizes, nil
}
