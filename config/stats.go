package config

import "time"

// Stats is the `stats` section: how long traffic statistics are kept.
type Stats struct {
	// RetentionDays: hourly traffic buckets older than this are purged
	// (also for terminated VMs); default 400 (a year and a month).
	RetentionDays int `yaml:"retention_days" valid:"1 or more (days)"`
}

// DefaultStatsRetentionDays is stats.retention_days when unset.
const DefaultStatsRetentionDays = 400

// Retention is how long traffic statistics are kept.
func (s Stats) Retention() time.Duration { return time.Duration(s.RetentionDays) * 24 * time.Hour }

func (c *Config) defaultStats() {
	if c.Stats.RetentionDays == 0 {
		c.Stats.RetentionDays = DefaultStatsRetentionDays
	}
	for name, p := range c.Products {
		if p.TrafficResetDay == 0 {
			p.TrafficResetDay = 1
		}
		c.Products[name] = p
	}
}

// Over-limit actions (products.*.traffic_action).
const (
	TrafficActionLog      = "log"
	TrafficActionThrottle = "throttle"
)

func (c *Config) validateStats() []error {
	var errs []error
	if c.Stats.RetentionDays < 1 {
		errs = append(errs, c.Errorf("stats.retention_days", "must be at least 1, got %d", c.Stats.RetentionDays))
	}
	for _, n := range c.ProductNames() {
		p := c.Products[n]
		k := "products." + n
		if p.SnapshotQuota < 0 {
			errs = append(errs, c.Errorf(k+".snapshot_quota", "must be 0 (no snapshots) or more, got %d", p.SnapshotQuota))
		}
		if p.TrafficLimitGB < 0 {
			errs = append(errs, c.Errorf(k+".traffic_limit_gb", "must be 0 (unlimited) or more, got %d", p.TrafficLimitGB))
		}
		if p.TrafficResetDay < 1 || p.TrafficResetDay > 28 {
			errs = append(errs, c.Errorf(k+".traffic_reset_day", "must be 1..28 (every month has it), got %d", p.TrafficResetDay))
		}
		switch p.TrafficAction {
		case "", TrafficActionLog:
			if p.TrafficThrottleMBps != 0 {
				errs = append(errs, c.Errorf(k+".traffic_throttle_mbps", "is only used with traffic_action: throttle; set that or omit traffic_throttle_mbps"))
			}
		case TrafficActionThrottle:
			if p.TrafficLimitGB == 0 {
				errs = append(errs, c.Errorf(k+".traffic_action", "throttle needs a traffic_limit_gb (1 or more): with 0 (unlimited) nothing is ever over the limit"))
			}
			if p.TrafficThrottleMBps < 1 {
				errs = append(errs, c.Errorf(k+".traffic_throttle_mbps", "must be 1 or more (MB/s, the NIC rate over the limit) with traffic_action: throttle, got %d", p.TrafficThrottleMBps))
			} else if r := p.Network.RateMBps; r > 0 && p.TrafficThrottleMBps >= r {
				errs = append(errs, c.Errorf(k+".traffic_throttle_mbps", "%d MB/s is not below the product's network.rate_mbps (%d): the throttle would not slow the VM down", p.TrafficThrottleMBps, r))
			}
		default:
			errs = append(errs, c.Errorf(k+".traffic_action", "%q is not one of: log (the default: an event line once per period), throttle (the NIC's rate set to traffic_throttle_mbps until the period ends)", p.TrafficAction))
		}
	}
	return errs
}
