package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBinaryStartsAndPrintsURL(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "pvesim")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--listen", "127.0.0.1:0", "--cluster", "../../testdata/pvesim/cluster.yaml", "--clock", "manual")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	vals := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for len(vals) < 4 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vals[k] = v
	}
	api := vals["PVE_API_URL"]
	require.Regexp(t, `^http://127\.0\.0\.1:[1-9]\d*/api2/json$`, api)
	require.Equal(t, "pvectl@pve!ci", vals["PVE_TOKEN_ID"])

	req, _ := http.NewRequest("GET", api+"/cluster/nextid", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+vals["PVE_TOKEN_ID"]+"="+vals["PVE_TOKEN_SECRET"])
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	res.Body.Close()
	require.Equal(t, "100", body["data"])

	res, err = http.Post(vals["PVESIM_CONTROL_URL"]+"/clock/advance", "application/json", strings.NewReader(`{"duration":"1m"}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	require.Error(t, run([]string{"--clock", "sundial"}, nil))
	require.Error(t, run([]string{"--task-duration-type", "qmclone"}, nil))
	require.Error(t, run([]string{"--cluster", "/nonexistent.yaml"}, nil))
}
