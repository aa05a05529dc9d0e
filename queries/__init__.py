"""Pure query builders: PromQL templates, strict rendering, label escaping, presets."""
