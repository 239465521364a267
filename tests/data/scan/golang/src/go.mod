module example.com/hello

go 1.19

require (
	example.com/greet v1.2.0
	example.com/old v1.0.0
)

replace example.com/old => example.com/fork v1.0.1
