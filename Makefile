# The commands a user needs. Everything goes through CMake presets; see CMakePresets.json.
JOBS   ?= 2
CONFIG ?= examples/portrait.toml
LISTEN ?= 127.0.0.1:8080
DATA   ?= ./data

.PHONY: all deps build debug test run bench format clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j$(JOBS)

debug: deps
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j$(JOBS)

test: build
	@ctest --preset release -j$(JOBS)

run: build
	@mkdir -p $(DATA)
	@echo "portrait: serving on http://$(LISTEN) (data in $(DATA)). Try:"
	@echo "  curl -s -XPOST http://$(LISTEN)/v1/events -d '{\"uid\":\"u1\",\"type\":\"click\",\"ts\":1700000000000,\"channel\":\"ads\",\"props\":{\"item_id\":111,\"category_id\":7}}'"
	@echo "  curl -s http://$(LISTEN)/v1/profiles/u1"
	@exec build/release/portrait serve --config $(CONFIG) --listen $(LISTEN) --data-dir $(DATA)

bench: build
	@bash bench/run.sh

format:
	@find src tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf build
