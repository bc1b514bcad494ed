package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Backups is the `backups` section: how pvectl backs VMs up (vzdump) and
// when scheduled backups run. A product's backup_quota turns backups on for
// its VMs (0 = none); backup_storage overrides the storage.
type Backups struct {
	// Storage is the PVE storage backups go to (content type backup);
	// default "local", PVE's default directory storage.
	Storage string `yaml:"storage"`
	// Mode is vzdump's mode: snapshot (default), suspend or stop.
	Mode string `yaml:"mode"`
	// Compress is vzdump's compression: zstd (default), lzo, gzip or 0 (none).
	Compress string `yaml:"compress"`
	// Window is when a schedule saved without --at runs: a random minute in
	// it is picked when the schedule is saved ("HH:MM-HH:MM", may wrap past
	// midnight). Default 01:00-05:00.
	Window string `yaml:"window"`
	// Grace: a scheduled slot missed by more than this (pvectl not run,
	// PVE down) is skipped and logged, not run late. Default 2h.
	Grace Duration `yaml:"grace"`
	// Timezone of schedules' weekdays and times: an IANA name, or Local
	// (the machine's, as cron uses). Default Local.
	Timezone string `yaml:"timezone"`
}

// Backup defaults.
const (
	DefaultBackupStorage  = "local"
	DefaultBackupMode     = "snapshot"
	DefaultBackupCompress = "zstd"
	DefaultBackupWindow   = "01:00-05:00"
	DefaultBackupGrace    = 2 * time.Hour
)

// BackupModes and BackupCompressions are vzdump's valid values.
var (
	BackupModes        = []string{"snapshot", "suspend", "stop"}
	BackupCompressions = []string{"zstd", "lzo", "gzip", "0"}
)

var storageIDRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.]*[A-Za-z0-9]$`)

// BackupStorageOf is the storage a product's backups go to.
func (c *Config) BackupStorageOf(p Product) string {
	if p.BackupStorage != "" {
		return p.BackupStorage
	}
	return c.Backups.Storage
}

// BackupStorages lists every storage some product backs up to, sorted:
// where backup list and rotation look for a VM's backups.
func (c *Config) BackupStorages() []string {
	var out []string
	for _, n := range c.ProductNames() {
		if s := c.BackupStorageOf(c.Products[n]); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Location is the time zone of backup schedules.
func (b Backups) Location() *time.Location {
	if b.Timezone == "" || b.Timezone == "Local" {
		return time.Local
	}
	if loc, err := time.LoadLocation(b.Timezone); err == nil {
		return loc
	}
	return time.Local // validated at load: not reached
}

// WindowMinutes returns the window's start and end as minutes after
// midnight; end < start wraps past midnight.
func (b Backups) WindowMinutes() (start, end int) {
	start, end, _ = parseWindow(b.Window)
	return start, end
}

// ParseClock reads "HH:MM" as minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("want HH:MM (24-hour), got %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("want HH:MM (24-hour), got %q", s)
	}
	return hh*60 + mm, nil
}

func parseWindow(s string) (start, end int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("want HH:MM-HH:MM, got %q", s)
	}
	if start, err = ParseClock(a); err != nil {
		return 0, 0, err
	}
	if end, err = ParseClock(b); err != nil {
		return 0, 0, err
	}
	if start == end {
		return 0, 0, fmt.Errorf("%q is empty: start and end are the same", s)
	}
	return start, end, nil
}

func (c *Config) defaultBackups() {
	b := &c.Backups
	if b.Storage == "" {
		b.Storage = DefaultBackupStorage
	}
	if b.Mode == "" {
		b.Mode = DefaultBackupMode
	}
	if b.Compress == "" {
		b.Compress = DefaultBackupCompress
	}
	if b.Window == "" {
		b.Window = DefaultBackupWindow
	}
	if b.Grace == 0 {
		b.Grace = Duration(DefaultBackupGrace)
	}
	if b.Timezone == "" {
		b.Timezone = "Local"
	}
}

func (c *Config) validateBackups() []error {
	var errs []error
	b := c.Backups
	bad := func(key, format string, args ...any) { errs = append(errs, c.Errorf("backups."+key, format, args...)) }
	if !storageIDRe.MatchString(b.Storage) {
		bad("storage", "invalid storage ID %q: a PVE storage name (letters, digits, '-', '_', '.')", b.Storage)
	}
	if !slices.Contains(BackupModes, b.Mode) {
		bad("mode", "unknown %q; valid: %s", b.Mode, strings.Join(BackupModes, ", "))
	}
	if !slices.Contains(BackupCompressions, b.Compress) {
		bad("compress", "unknown %q; valid: %s", b.Compress, strings.Join(BackupCompressions, ", "))
	}
	if _, _, err := parseWindow(b.Window); err != nil {
		bad("window", "%v", err)
	}
	if b.Grace.D() < time.Minute {
		bad("grace", "must be at least 1m, got %s", b.Grace.D())
	}
	if b.Timezone != "Local" {
		if _, err := time.LoadLocation(b.Timezone); err != nil {
			bad("timezone", "unknown time zone %q; valid: an IANA name like Europe/Berlin, UTC, or Local", b.Timezone)
		}
	}
	for _, n := range c.ProductNames() {
		if s := c.Products[n].BackupStorage; s != "" && !storageIDRe.MatchString(s) {
			errs = append(errs, c.Errorf("products."+n+".backup_storage", "invalid storage ID %q: a PVE storage name (letters, digits, '-', '_', '.')", s))
		}
	}
	return errs
}
