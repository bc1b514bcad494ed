package pvesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// serveControl serves the JSON control API (no authentication; bind the
// binary to loopback):
//
//	GET    /_sim/state                  State
//	GET    /_sim/requests[?rejected=1]  []Request
//	POST   /_sim/clock/advance          {"duration":"10s"}   (manual clock only)
//	POST   /_sim/faults/latency         {"fixed":"200ms","jitter":"50ms"}
//	POST   /_sim/faults/node-workers    {"workers":3}   (0: off; SetNodeWorkers)
//	DELETE /_sim/inflight               ResetInFlightPeaks
//	GET    /_sim/inflight               {"in_flight":{"pve1":3,…},"served":{…}} (InFlightPeaks, ServedPeaks)
//	POST   /_sim/faults/error-rate      ErrorRate
//	POST   /_sim/faults/fail-next       FailNext
//	POST   /_sim/faults/task            TaskFault
//	POST   /_sim/faults/lock            {"vmid":101,"lock":"clone"}
//	POST   /_sim/faults/node            {"node":"pve2","offline":true}
//	POST   /_sim/faults/never-running   {"vmid":101,"on":true}
//	POST   /_sim/faults/quorum          {"quorate":false}
//	GET    /_sim/faults                 FaultState
//	DELETE /_sim/faults                 clear all faults
//	GET|POST /_sim/access[/…]           users, groups, pools, ACL (serveAccessControl)
func (s *Sim) serveControl(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(code int, err error) { reply(code, map[string]string{"error": err.Error()}) }
	decode := func(v any) bool {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			fail(http.StatusBadRequest, fmt.Errorf("bad JSON body: %w", err))
			return false
		}
		return true
	}
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/_sim"), "/")
	switch r.Method + " " + path {
	case "GET /state":
		reply(200, s.Dump())
	case "GET /requests":
		if r.URL.Query().Get("rejected") == "1" {
			reply(200, nonNil(s.Rejected()))
		} else {
			reply(200, nonNil(s.Requests()))
		}
	case "POST /clock/advance":
		var body struct {
			Duration Duration `json:"duration"`
		}
		if !decode(&body) {
			return
		}
		mc, ok := s.clock.(*ManualClock)
		if !ok {
			fail(http.StatusConflict, fmt.Errorf("the clock is not manual (start with --clock manual)"))
			return
		}
		mc.Advance(time.Duration(body.Duration))
		reply(200, map[string]any{"time": mc.Now()})
	case "GET /faults":
		reply(200, s.Faults())
	case "DELETE /faults":
		s.ClearFaults()
		reply(200, s.Faults())
	case "POST /faults/latency":
		var body struct {
			Fixed  Duration `json:"fixed"`
			Jitter Duration `json:"jitter"`
		}
		if !decode(&body) {
			return
		}
		s.SetLatency(time.Duration(body.Fixed), time.Duration(body.Jitter))
		reply(200, s.Faults())
	case "POST /faults/node-workers":
		var body struct {
			Workers int `json:"workers"`
		}
		if !decode(&body) {
			return
		}
		s.SetNodeWorkers(body.Workers)
		reply(200, s.Faults())
	case "DELETE /inflight":
		s.ResetInFlightPeaks()
		reply(200, map[string]string{})
	case "GET /inflight":
		reply(200, map[string]map[string]int{"in_flight": nonNilMap(s.InFlightPeaks()), "served": nonNilMap(s.ServedPeaks())})
	case "POST /faults/error-rate":
		var f ErrorRate
		if !decode(&f) {
			return
		}
		if err := checkEndpoint(f.Endpoint); err != nil {
			fail(http.StatusBadRequest, err)
			return
		}
		s.SetErrorRate(f)
		reply(200, s.Faults())
	case "POST /faults/fail-next":
		var f FailNext
		if !decode(&f) {
			return
		}
		if err := checkEndpoint(f.Endpoint); err != nil {
			fail(http.StatusBadRequest, err)
			return
		}
		s.FailNext(f)
		reply(200, s.Faults())
	case "POST /faults/task":
		var f TaskFault
		if !decode(&f) {
			return
		}
		s.FailTask(f)
		reply(200, s.Faults())
	case "POST /faults/lock":
		var body struct {
			VMID int    `json:"vmid"`
			Lock string `json:"lock"`
		}
		if !decode(&body) {
			return
		}
		if err := s.LeaveLock(body.VMID, body.Lock); err != nil {
			fail(http.StatusNotFound, err)
			return
		}
		reply(200, map[string]any{"vmid": body.VMID, "lock": body.Lock})
	case "POST /faults/node":
		var body struct {
			Node    string `json:"node"`
			Offline bool   `json:"offline"`
		}
		if !decode(&body) {
			return
		}
		if err := s.SetNodeOffline(body.Node, body.Offline); err != nil {
			fail(http.StatusNotFound, err)
			return
		}
		reply(200, s.Faults())
	case "POST /faults/never-running":
		var body struct {
			VMID int  `json:"vmid"`
			On   bool `json:"on"`
		}
		if !decode(&body) {
			return
		}
		s.SetNeverRunning(body.VMID, body.On)
		reply(200, s.Faults())
	case "POST /faults/quorum":
		var body struct {
			Quorate bool `json:"quorate"`
		}
		if !decode(&body) {
			return
		}
		s.SetQuorum(body.Quorate)
		reply(200, s.Faults())
	default:
		if s.serveAccessControl(w, r, path) {
			return
		}
		fail(http.StatusNotFound, fmt.Errorf("unknown control endpoint %s %s", r.Method, r.URL.Path))
	}
}

func nonNil(r []Request) []Request {
	if r == nil {
		return []Request{}
	}
	return r
}
