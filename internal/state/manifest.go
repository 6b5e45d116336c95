package state

import (
	"context"
	"fmt"
)

// RenewManifest replaces host's signed manifest with a renewal of it, if
// the host's desired seq is still seq; it reports whether it did. A renewal
// racing a newer deploy (on this builder or another sharing the database)
// thus never replaces the newer manifest.
func (s *Store) RenewManifest(ctx context.Context, host string, seq uint64, manifest []byte) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE hosts SET manifest = ? WHERE name = ? AND desired_seq = ?`, manifest, host, seq)
	if err != nil {
		return false, fmt.Errorf("renew manifest of %s: %w", host, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("renew manifest of %s: %w", host, err)
	}
	return n == 1, nil
}
