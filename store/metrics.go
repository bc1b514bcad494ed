package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// MetricSeries is one series of a cumulative metric: its name as exposed,
// its labels and a value (an increment for MetricsAdd, the total from
// MetricTotals).
type MetricSeries struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// MetricsAdd adds each series' Value to its stored total (a series not yet
// stored starts at 0), all in one transaction: a tick's increments are kept
// all or none.
func (s *Store) MetricsAdd(ctx context.Context, adds []MetricSeries) error {
	if len(adds) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO metric_counters (name, labels, value) VALUES (?, ?, ?)
			ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value`)
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, a := range adds {
			labels, err := labelsJSON(a.Labels)
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, a.Name, labels, a.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// MetricTotals returns every stored series with its total, by name and
// labels.
func (s *Store) MetricTotals(ctx context.Context) ([]MetricSeries, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, labels, value FROM metric_counters ORDER BY name, labels`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []MetricSeries
	for rows.Next() {
		var m MetricSeries
		var labels string
		if err := rows.Scan(&m.Name, &labels, &m.Value); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(labels), &m.Labels); err != nil {
			return nil, fmt.Errorf("metric %s: labels %q: %w", m.Name, labels, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// labelsJSON is the labels' stored form: a JSON object, keys sorted (so one
// set of labels is always one row).
func labelsJSON(l map[string]string) (string, error) {
	if l == nil {
		l = map[string]string{}
	}
	b, err := json.Marshal(l)
	return string(b), err
}
