package config_test

import (
	"testing"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/stretchr/testify/require"
)

func TestBackupsSection(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("pvectl.yaml", []byte(minimal))
	require.NoError(t, err)
	b := c.Backups
	require.Equal(t, "local", b.Storage)
	require.Equal(t, "snapshot", b.Mode)
	require.Equal(t, "zstd", b.Compress)
	require.Equal(t, 2*time.Hour, b.Grace.D())
	start, end := b.WindowMinutes()
	require.Equal(t, []int{60, 300}, []int{start, end})
	require.Equal(t, time.Local, b.Location())
	require.Equal(t, []string{"local"}, c.BackupStorages())

	c, err = config.Parse("pvectl.yaml", []byte(withProductLine("backup_storage: pbs1")+
		"backups: {storage: nfs-backup, mode: stop, compress: '0', window: '23:30-02:00', grace: 30m, timezone: Europe/Berlin}\n"))
	require.NoError(t, err)
	require.Equal(t, "pbs1", c.BackupStorageOf(c.Products["small"]))
	require.Equal(t, []string{"pbs1"}, c.BackupStorages())
	start, end = c.Backups.WindowMinutes()
	require.Equal(t, []int{23*60 + 30, 120}, []int{start, end})
	require.Equal(t, "Europe/Berlin", c.Backups.Location().String())

	for _, tc := range []struct{ yaml, want string }{
		{"backups: {mode: fast}", `backups.mode: unknown "fast"; valid: snapshot, suspend, stop`},
		{"backups: {compress: xz}", `backups.compress: unknown "xz"; valid: zstd, lzo, gzip, 0`},
		{"backups: {window: '3-5'}", `backups.window: want HH:MM (24-hour), got "3"`},
		{"backups: {window: '03:00-03:00'}", `backups.window: "03:00-03:00" is empty`},
		{"backups: {grace: 10s}", "backups.grace: must be at least 1m, got 10s"},
		{"backups: {timezone: Mars/Olympus}", `backups.timezone: unknown time zone "Mars/Olympus"`},
		{"backups: {storage: 'my storage'}", `backups.storage: invalid storage ID "my storage"`},
	} {
		_, err := config.Parse("pvectl.yaml", []byte(minimal+tc.yaml+"\n"))
		require.ErrorContains(t, err, tc.want, tc.yaml)
	}
}
