package proxmox_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
)

func TestContractBackupAndRestore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	vm := b.clone(t, 101, "web1")

	ref, err := b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local", Mode: "snapshot", Compress: "zstd", NotesTemplate: "{{guestname}}"})
	ts := b.ok(t, ref, err)
	require.Equal(t, "vzdump", ts.Type)
	require.Equal(t, "101", ts.ID)

	vols, err := b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: 101})
	require.NoError(t, err)
	require.Len(t, vols, 1)
	bk := vols[0]
	require.True(t, strings.HasPrefix(bk.VolID, "local:backup/vzdump-qemu-101-"), bk.VolID)
	require.Equal(t, "backup", bk.Content)
	require.Equal(t, 101, bk.VMID)
	require.Positive(t, bk.Size)
	require.False(t, bk.CTime.IsZero())

	all, err := b.c.StorageContent(b.ctx, "pve1", "local-lvm", proxmox.ContentFilter{})
	require.NoError(t, err)
	require.NotEmpty(t, all, "disk images of the template and the clone")

	// Restore to a new VMID, then again without force.
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 201}, Archive: bk.VolID, Storage: "local-lvm", Unique: true})
	ts = b.ok(t, ref, err)
	require.Equal(t, "qmrestore", ts.Type)
	_, err = b.c.VMConfig(b.ctx, proxmox.VMRef{Node: "pve1", VMID: 201})
	require.NoError(t, err)
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 201}, Archive: bk.VolID, Storage: "local-lvm"})
	requireClass(t, proxmox.ClassAlreadyExists, b.outcome(t, ref, err))
	// With force it overwrites.
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 201}, Archive: bk.VolID, Storage: "local-lvm", Force: true})
	b.ok(t, ref, err)

	// Delete the backup.
	ref, err = b.c.DeleteVolume(b.ctx, "pve1", "local", bk.VolID)
	require.NoError(t, err)
	if !ref.IsZero() {
		st := b.ok(t, ref, nil)
		require.Equal(t, "imgdel", st.Type)
	}
	vols, err = b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: 101})
	require.NoError(t, err)
	require.Empty(t, vols)

	// Protected backups cannot be deleted.
	ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local", Protected: true, Remove: proxmox.Bool(false)})
	b.ok(t, ref, err)
	vols, err = b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: 101})
	require.NoError(t, err)
	require.Len(t, vols, 1)
	require.True(t, vols[0].Protected)
	ref, err = b.c.DeleteVolume(b.ctx, "pve1", "local", vols[0].VolID)
	requireClass(t, proxmox.ClassPrecondition, b.outcome(t, ref, err))

	// Errors.
	_, err = b.c.StorageContent(b.ctx, "pve1", "nosuch", proxmox.ContentFilter{})
	requireClass(t, proxmox.ClassStorage, err)
	ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "nosuch"})
	requireClass(t, proxmox.ClassStorage, b.outcome(t, ref, err))
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 202}, Archive: vols[0].VolID, Storage: "nosuch"})
	requireClass(t, proxmox.ClassStorage, b.outcome(t, ref, err))
	ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: proxmox.VMRef{Node: "pve1", VMID: 202}, Archive: bk.VolID, Storage: "local-lvm"})
	requireClass(t, proxmox.ClassNotFound, b.outcome(t, ref, err))
	ref, err = b.c.DeleteVolume(b.ctx, "pve1", "local", bk.VolID)
	requireClass(t, proxmox.ClassNotFound, b.outcome(t, ref, err))
	// A token without VM.Backup / Datastore.AllocateSpace cannot back up,
	// nor delete a volume.
	ref, err = b.limited.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local"})
	requireClass(t, proxmox.ClassPermission, b.outcome(t, ref, err))
	_, err = b.limited.DeleteVolume(b.ctx, "pve1", "local", vols[0].VolID)
	requireClass(t, proxmox.ClassPermission, err)
	_, err = b.badAuth.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{})
	requireClass(t, proxmox.ClassAuth, err)
}
