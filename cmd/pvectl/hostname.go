package main

import (
	"context"
	"fmt"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

func newVMSetHostnameCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "set-hostname VM NEW",
		Short: "Rename a ready VM: PVE name, cloud-init hostname and DNS records",
		Long: `Give the VM the hostname NEW and return at once. NEW is checked like vm create's
--hostname (a fully qualified name, not a zone apex, not used by another VM, holding no
DNS records yet); the record takes it at once. The next ticks rename the VM in Proxmox
(its name, which cloud-init gives the guest as hostname, and its description), then delete
the old name's DNS records and publish the new name's (state set_hostname, then
hostname_renamed, then ready). The VM keeps running: the guest picks the new hostname up
from cloud-init at its next boot. DNS failures do not block: the VM goes to ready
DNS-dirty and process_vms retries. A new name while a rename is under way replaces it;
the same name again changes nothing.`,
		Args: exactArgs(2, "a VM (service id or hostname) and the new hostname"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.request(cmd, func(ctx context.Context, e *engine.Engine) (engine.Result, error) {
				return e.SetHostname(ctx, args[0], args[1])
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !res.Changed {
				fmt.Fprintf(w, "VM %s: already named %s (status %s); nothing changed\n", res.VM.ServiceID, res.VM.Hostname, res.VM.Status)
				return nil
			}
			fmt.Fprintf(w, "VM %s: status set_hostname (hostname %s); the next ticks rename it in Proxmox and move its DNS records\n",
				res.VM.ServiceID, res.VM.Hostname)
			return nil
		},
	}
}
