package proxmox_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
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

// The backup details issue 12 builds on, on both schema versions.
func TestContractBackupDetails(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"8.4.5", "9.2.3"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			cl := pvesim.DefaultCluster()
			cl.Version = version
			b := setupCluster(t, cl)
			vm := b.clone(t, 101, "web1")

			// nil Remove sends remove=0: PVE's prune never runs behind pvectl's back
			b.must(t)(b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local", NotesTemplate: "{{guestname}}"}))
			var sent map[string]string
			for _, r := range b.sim.Requests() {
				if r.Endpoint == "POST /nodes/{node}/vzdump" {
					sent = r.Params
				}
			}
			require.Equal(t, "0", sent["remove"])

			vols, err := b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: 101})
			require.NoError(t, err)
			require.Len(t, vols, 1)
			v := vols[0]
			require.Equal(t, "web1", v.Notes)
			require.False(t, v.Protected)
			require.Equal(t, "qemu", v.Subtype)
			require.Equal(t, "vma", v.Format)

			// protect and annotate, read back, unprotect
			notes := "before upgrade"
			require.NoError(t, b.c.UpdateVolume(b.ctx, "pve1", "local", v.VolID, proxmox.VolumeUpdate{Notes: &notes, Protected: proxmox.Bool(true)}))
			vols, err = b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: 101})
			require.NoError(t, err)
			require.True(t, vols[0].Protected)
			require.Equal(t, notes, vols[0].Notes)
			require.NoError(t, b.c.UpdateVolume(b.ctx, "pve1", "local", v.VolID, proxmox.VolumeUpdate{Protected: proxmox.Bool(false)}))
			require.NoError(t, b.c.UpdateVolume(b.ctx, "pve1", "local", v.VolID, proxmox.VolumeUpdate{}), "nothing to send")
			imgs, err := b.c.StorageContent(b.ctx, "pve1", "local-lvm", proxmox.ContentFilter{VMID: 101})
			require.NoError(t, err)
			require.NotEmpty(t, imgs)
			err = b.c.UpdateVolume(b.ctx, "pve1", "local-lvm", imgs[0].VolID, proxmox.VolumeUpdate{Protected: proxmox.Bool(true)})
			requireClass(t, proxmox.ClassInvalid, err)
			_, err = b.c.DeleteVolume(b.ctx, "pve1", "local", "")
			requireClass(t, proxmox.ClassInvalid, err)

			// a VM on another node: PVE answers "OK" and backs nothing up
			_, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: proxmox.VMRef{Node: "pve2", VMID: 101}, Storage: "local"})
			requireClass(t, proxmox.ClassPrecondition, err)

			// a locked VM: the job fails, the lock is named
			require.NoError(t, b.sim.LeaveLock(101, "snapshot"))
			ref, err := b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local"})
			require.NoError(t, err)
			st := b.wait(t, ref)
			require.Equal(t, "job errors", st.ExitStatus)
			lg, err := b.c.TaskLog(b.ctx, ref, 0, 500)
			require.NoError(t, err)
			err = proxmox.TaskFailure(st, lg) // vzdump names the cause only in its log
			requireClass(t, proxmox.ClassLocked, err)
			require.Equal(t, "snapshot", proxmox.ConfigLock(err))
			require.NoError(t, b.sim.LeaveLock(101, ""))

			// wrong content type: ClassStorage from the task
			ref, err = b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local-lvm"})
			requireClass(t, proxmox.ClassStorage, b.outcome(t, ref, err))

			// restore refused on a running VM (in the task), over a locked one (sync)
			vs, err := b.c.VMStatus(b.ctx, vm)
			require.NoError(t, err)
			if vs.Status != "running" {
				require.NoError(t, b.sim.StartOutOfBand(101))
			}
			ref, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: vm, Archive: v.VolID, Force: true})
			requireClass(t, proxmox.ClassPrecondition, b.outcome(t, ref, err))
			require.NoError(t, b.sim.LeaveLock(101, "backup"))
			_, err = b.c.Restore(b.ctx, proxmox.RestoreRequest{VM: vm, Archive: v.VolID, Force: true})
			requireClass(t, proxmox.ClassLocked, err)
			require.Equal(t, "backup", proxmox.ConfigLock(err))
		})
	}
}
