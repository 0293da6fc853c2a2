package config

// Layer is what one source of settings says: the built-in defaults, the
// configuration file, the environment or the command line.
type Layer struct {
	// Source names the layer in messages: "defaults", the file's path,
	// "environment" or "flags".
	Source string
	// Config holds the layer's values; only the settings in Set count.
	Config Config
	// Set holds the Name of every setting the layer gives. A setting
	// given the zero value, or its default, is set all the same.
	Set map[string]bool
}

// set records that the layer gives the field named name.
func (l *Layer) set(name string) {
	if l.Set == nil {
		l.Set = map[string]bool{}
	}
	l.Set[name] = true
}

// Merge applies layers in order, each over the ones before, starting from
// the zero Config: pass Defaults() first. A setting a layer gives replaces
// the one before, even when it is the default value; a setting it does not
// give is kept. A layer that gives a setting and not the one it Excludes
// (token and token_file) clears that one; a layer giving both keeps both,
// for Validate to report.
func Merge(layers ...Layer) Config {
	var c Config
	for _, l := range layers {
		for _, f := range fields {
			if l.Set[f.Name()] {
				f.copy(&c, &l.Config)
			}
		}
		for _, f := range fields {
			if f.Excludes != "" && l.Set[f.Name()] && !l.Set[f.Excludes] {
				if x, ok := Lookup(f.Excludes); ok {
					x.clear(&c)
				}
			}
		}
	}
	return c
}

// Defaults returns the built-in defaults as the first layer: it sets every
// setting to its value in Default().
func Defaults() Layer {
	l := Layer{Source: "defaults", Config: Default()}
	for _, f := range fields {
		l.set(f.Name())
	}
	return l
}

// Env returns the layer of the environment, read through getenv: the
// settings whose Env variable is set and not empty. Only string settings
// have one (TestEnvSettingsAreStrings), so nothing there fails to parse.
func Env(getenv func(string) string) Layer {
	l := Layer{Source: "environment"}
	for _, f := range fields {
		if f.Env == "" {
			continue
		}
		if v := getenv(f.Env); v != "" {
			*f.ptr(&l.Config).(*string) = v
			l.set(f.Name())
		}
	}
	return l
}
