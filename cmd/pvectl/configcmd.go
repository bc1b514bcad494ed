package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pvectl/pvectl/engine"
	"github.com/spf13/cobra"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration file",
	}
	var online bool
	check := &cobra.Command{
		Use:   "check [--online]",
		Short: "Validate the config file and print a short summary (--online: ask PVE and DNS too)",
		Long: `Validate the config file strictly (unknown keys, wrong types, missing or invalid
values are errors naming the file, line and key; exit 2) and print a summary of
products, IP pools, DNS zones and task intervals. Contacts nothing.

--online then asks PVE and the DNS servers whether what the config names exists, one
line each: the token is accepted and holds every privilege pvectl needs on the paths it
uses (GET /access/permissions; one line per missing privilege); every node named is online; every template exists and
is a template; every storage a product uses is on its nodes, available, and holds its
content (images, backup); every bridge a product or IP pool uses is on its nodes; every
DNS zone answers and accepts pvectl's signed updates. Exit 1 if a line says FAIL. Changes
nothing.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: OK\n", c.Path())
			fmt.Fprintf(out, "proxmox: %s (token %s)\n", c.Proxmox.URL, c.Proxmox.TokenID)
			fmt.Fprintf(out, "vmid range: %d-%d\n", c.VMIDRange.Min, c.VMIDRange.Max)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "products: %d\n", len(c.Products))
			for _, n := range c.ProductNames() {
				p := c.Products[n]
				tpl := fmt.Sprintf("template %d@%s", p.Template.VMID, p.Template.Node)
				if names := p.TemplateNames(); len(names) > 0 {
					var list []string
					for _, name := range names {
						t := p.Templates[name]
						if name == p.DefaultTemplateName() {
							name += " (default)"
						}
						list = append(list, fmt.Sprintf("%s %d@%s", name, t.VMID, t.Node))
					}
					tpl = "templates " + strings.Join(list, ", ")
				}
				fmt.Fprintf(tw, "  %s\t%d core(s) x %d socket(s), %d MB\t%s (%s)\ttarget %s\tIPv4 %d, IPv6 %d\n",
					n, p.Cores, p.Sockets, p.MemoryMB, tpl, p.Clone, p.TargetNode, p.Network.IPv4, p.Network.IPv6)
			}
			fmt.Fprintf(tw, "ip pools: %d\n", len(c.IPPools))
			for _, p := range c.IPPools {
				fmt.Fprintf(tw, "  %s\tIPv%d %s\t%s-%s\t%s vlan %d\tnodes %s\n", p.Name, p.Family, p.Network, p.First, p.Last, p.Bridge, p.VLAN, strings.Join(p.Nodes, ","))
			}
			fmt.Fprintf(tw, "dns zones: %d\n", len(c.DNS.Zones))
			for _, z := range c.DNS.Zones {
				fmt.Fprintf(tw, "  %s\t%s\tkey %s (%s)\n", z.Name, z.Server, z.KeyName, z.Algorithm)
			}
			fmt.Fprintf(tw, "tasks:\n")
			e := &engine.Engine{Config: c, TaskList: scheduledTasks()}
			for _, t := range e.Tasks() {
				iv := e.Interval(t)
				s := iv.String()
				if iv == 0 {
					s = "disabled"
				}
				fmt.Fprintf(tw, "  %s\t%s\n", t.Name, s)
			}
			if err := tw.Flush(); err != nil || !online {
				return err
			}
			// No store is needed (it may not exist yet): only the config.
			clock, err := engine.ClockFromEnv()
			if err != nil {
				return usageError{err}
			}
			oe := &engine.Engine{Config: c, Clock: clock, NewEnv: newEnv}
			fmt.Fprintln(out, "online:")
			failed := 0
			for _, r := range oe.CheckOnline(cmd.Context()) {
				if r.Status == engine.CheckFail {
					failed++
				}
				fmt.Fprintf(out, "  %-5s %-10s %s\n", strings.ToUpper(r.Status), r.What, r.Detail)
			}
			if failed > 0 {
				return failure{fmt.Errorf("config check --online: %d check(s) failed", failed)}
			}
			fmt.Fprintln(out, "  every online check passed")
			return nil
		},
	}
	check.Flags().BoolVar(&online, "online", false, "also ask PVE and the DNS servers whether what the config names exists")
	cmd.AddCommand(check)
	return cmd
}
