package main

import (
	"encoding/csv"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/rogpeppe/go-internal/testscript"
)

// statsSimCmd runs `pvesim traffic …` and `pvesim traffic-match …` (sim_test.go).
func statsSimCmd(ts *testscript.TestScript, args []string) {
	sim := simFor(ts)
	vmid := 0
	for _, st := range sim.VMs() {
		for _, line := range strings.Split(st.Config["description"], "\n") {
			if len(args) > 1 && line == "pvectl service="+args[1] {
				vmid = st.VMID
			}
		}
	}
	if vmid == 0 {
		ts.Fatalf("pvesim has no VM marked for service %v", args[1:])
	}
	switch args[0] {
	case "traffic":
		in, err := strconv.ParseFloat(args[2], 64)
		ts.Check(err)
		out, err := strconv.ParseFloat(args[3], 64)
		ts.Check(err)
		sim.SetTrafficProfile(vmid, in, out)
		ts.Setenv("TRAFFIC_PEAK_"+args[1], strconv.FormatFloat((in+out)*pvesim.TrafficFactor(peakHour), 'f', 0, 64))
	case "traffic-match":
		recs, err := csv.NewReader(strings.NewReader(ts.ReadFile(args[2]))).ReadAll()
		ts.Check(err)
		last := recs[len(recs)-1]
		day, ok := strings.CutPrefix(last[1], "period ")
		if !ok {
			ts.Fatalf("last CSV row is not the period row: %v", last)
		}
		start, err := time.Parse("2006-01-02", day)
		ts.Check(err)
		bin, err := strconv.ParseFloat(last[5], 64)
		ts.Check(err)
		bout, err := strconv.ParseFloat(last[6], 64)
		ts.Check(err)
		gin, gout := sim.TrafficGenerated(vmid, start, sim.Clock().Now())
		peak, _ := strconv.ParseFloat(ts.Getenv("TRAFFIC_PEAK_"+args[1]), 64)
		diff := math.Abs(bin + bout - gin - gout)
		ts.Logf("stats %.0f bytes, pvesim generated %.0f bytes, difference %.0f (one step at peak: %.0f)", bin+bout, gin+gout, diff, 60*peak)
		if diff > 60*peak {
			ts.Fatalf("stats total %.0f differs from pvesim's %.0f by %.0f bytes, more than one RRD step (%.0f)", bin+bout, gin+gout, diff, 60*peak)
		}
	}
}

// peakHour is the hour of day with the profile's highest factor (7h mod 24 = 23).
const peakHour = 17
