package main

import (
	"example.com/greet"
	"example.com/old"
)

func main() { println(greet.Hello(), old.Name()) }
