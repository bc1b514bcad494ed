package store

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"
)

// A database created by a release that only had 00001 (with VMs, IPs and DNS
// rows in it) opens with the current binary: the later migrations ALTER it
// and keep its rows.
func TestDatabaseFromV1WithDataOpensAndMigrates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path, db := migratedTo(t, 1)
	_, err := db.Exec(`INSERT INTO vms (service_id, hostname, product, status, vmid, dns_dirty, created_at, updated_at)
		VALUES ('a', 'a.example.test', 'small', 'ready', 1000, 1, 1, 1)`)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO ip_allocations (address, family, pool, vm_id, created_at) VALUES ('192.0.2.10', 4, 'p', 1, 1)`)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO runs (vm_id, task, started_at) VALUES (1, 'process_vms', 1)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s, err := Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	vm, err := s.VMFind(ctx, "a")
	require.NoError(t, err)
	require.True(t, vm.DNSDirty)
	d, err := s.DNSRetryGet(ctx, vm.ID)
	require.NoError(t, err)
	require.Equal(t, 0, d.Attempts)
	ips, err := s.IPsForVM(ctx, vm.ID)
	require.NoError(t, err)
	require.Len(t, ips, 1)
	// 00006 replaced the status column (new CHECK): the value, the VM's
	// log (ON DELETE CASCADE) and the new states are there.
	require.Equal(t, "ready", vm.Status)
	var runs int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE vm_id = ?`, vm.ID).Scan(&runs))
	require.Equal(t, 1, runs)
	_, err = s.VMRequest(ctx, vm.ID, []string{"ready"}, "power_reboot", "", t0ms())
	require.NoError(t, err)
	// 00008: the migrate states and the request's options.
	got, err := s.VMRequestWith(ctx, vm.ID, []string{"power_reboot"}, "migrate", "", RequestOpts{MigrateNode: "auto", MigrateOnline: true}, t0ms())
	require.NoError(t, err)
	require.Equal(t, "auto", got.MigrateNode)
	require.True(t, got.MigrateOnline)
	require.NoError(t, s.VMSetTargetNode(ctx, got.ID, "migrate", got.Version, "pve2", t0ms()))
	// 00009: the template column and the hostname states; a new hostname
	// another live VM holds is refused.
	require.Equal(t, "", got.Template)
	tpl := "ubuntu-24.04"
	got, err = s.VMRequestWith(ctx, vm.ID, []string{"migrate"}, "set_hostname", "", RequestOpts{Hostname: "b.example.test", Template: &tpl}, t0ms())
	require.NoError(t, err)
	require.Equal(t, "b.example.test", got.Hostname)
	require.Equal(t, "ubuntu-24.04", got.Template)
	_, err = s.db.Exec(`INSERT INTO vms (service_id, hostname, product, status, created_at, updated_at) VALUES ('c', 'c.example.test', 'small', 'ready', 1, 1)`)
	require.NoError(t, err)
	_, err = s.VMRequestWith(ctx, vm.ID, []string{"set_hostname"}, "set_hostname", "", RequestOpts{Hostname: "c.example.test"}, t0ms())
	require.ErrorIs(t, err, ErrDuplicate)
	require.ErrorContains(t, err, "hostname c.example.test is used by service c (status ready)")
	got, err = s.VMRequestWith(ctx, vm.ID, []string{"set_hostname"}, "hostname_renamed", "", RequestOpts{}, t0ms())
	require.NoError(t, err)
	require.Equal(t, "b.example.test", got.Hostname)
	// The trigger from 00002 works on the migrated table.
	require.NoError(t, s.DNSSetDirty(ctx, vm.ID, 3, t0ms(), t0ms()))
	require.NoError(t, s.VMSetDNSDirty(ctx, vm.ID, false, t0ms()))
	d, err = s.DNSRetryGet(ctx, vm.ID)
	require.NoError(t, err)
	require.Equal(t, 0, d.Attempts)
}

func t0ms() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }

// migratedTo is a database in a temp dir migrated up to version, as a
// release that had only those migrations left it; the test fills it with
// SQL, closes db and opens path with the current binary.
func migratedTo(t *testing.T, version int64) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pvectl.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	sub, err := fs.Sub(migrations, "migrations")
	require.NoError(t, err)
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	require.NoError(t, err)
	_, err = p.UpTo(context.Background(), version)
	require.NoError(t, err)
	return path, db
}
