// Command gen regenerates pvesim's schema subset from the full PVE schemas:
//
//	go generate ./providers/proxmox/pvesim/
package main

import (
	"flag"
	"log"
	"os"
	"path/filepath"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim/internal/schemagen"
)

func main() {
	shared := flag.String("shared", "../../../../shared/pve-api", "directory with the full PVE schemas")
	out := flag.String("out", "../../../testdata/pvesim-schema", "output directory for the JSON subsets")
	gofile := flag.String("gofile", "schema_data.go", "generated Go file embedding the subsets")
	flag.Parse()
	full84, err := os.ReadFile(filepath.Join(*shared, "apidoc-pve8.4.5.json"))
	if err != nil {
		log.Fatal(err)
	}
	full92, err := os.ReadFile(filepath.Join(*shared, "pve9.2.3-schema-normalized.json"))
	if err != nil {
		log.Fatal(err)
	}
	f, err := schemagen.Generate(full84, full92)
	if err != nil {
		log.Fatal(err)
	}
	for name, b := range map[string][]byte{
		filepath.Join(*out, "pve8.4.5.json"): f.Schema84,
		filepath.Join(*out, "pve9.2.3.json"): f.Schema92,
		*gofile:                              f.GoFile,
	} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
