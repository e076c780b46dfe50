"""Agent tool-call gating: rules (`tool_rules` of the policy), decision engine, baselines, agent tokens."""
