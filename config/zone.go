package config

import (
	"fmt"
	"time"
)

// ZoneHelp names the values a time zone setting (timezone, --tz) accepts.
const ZoneHelp = "UTC, Local or an IANA name like Europe/Berlin"

// LoadZone resolves a time zone setting: "" and "UTC" are UTC, "Local" the
// host's zone, anything else an IANA name (pvectl embeds the zone database,
// so IANA names resolve on hosts without tzdata).
func LoadZone(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return time.Local, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; valid: %s", name, ZoneHelp)
	}
	return loc, nil
}

// Zone is the zone pvectl prints times in for people (the timezone key;
// UTC when unset). Validated at load.
func (c *Config) Zone() *time.Location {
	loc, err := LoadZone(c.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}
