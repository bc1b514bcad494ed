package main

import (
	"context"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/states"
)

// pipelines returns the pipeline tables the step runner uses.
func pipelines() states.Registry { return states.Pipelines() }

// newEnv builds the step environment on first use.
func newEnv(ctx context.Context, e *engine.Engine) (*states.Env, error) {
	return &states.Env{Store: e.Store, Config: e.Config, Now: e.Clock.Now}, nil
}
