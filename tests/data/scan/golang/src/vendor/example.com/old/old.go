package old

func Name() string { return "fork" }
