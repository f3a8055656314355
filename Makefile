# nablatau — the two commands of the README:
#   make reproduce   run every experiment with papermill, then make figures (PROFILE=smoke|quick|paper, default quick)
#   make test        run the test suite (unit tests, doctests, notebooks through nbval)
# Both create .venv and install the package with its dev extras first.
#   make figures     every table and plot under figures/ from the saved results (no training)
#   make test-fast   the tests not marked slow: no real training, no Ray, no notebooks (under two minutes)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick
EXECUTED := notebooks/executed
PAPERMILL = $(BIN)/papermill --kernel python3 --cwd notebooks

# The paper's image grid: forget fractions, removed classes and seeds. One seed by default (the reference's
# first); SEEDS="1 2 3" runs the reference's three, as the committed quick evidence does. The seeds are the
# notebooks' model seeds (their `seeds` parameter), except in the α₀ sweep, whose models all start from seed 0:
# there they are its forget-set seeds (`split_seeds`).
FRACTIONS ?= 0.03 0.15 0.30
FORGET_CLASSES ?= 0
SEEDS_smoke := 1
SEEDS_quick := 1
SEEDS_paper := 1 2 3
SEEDS ?= $(SEEDS_$(PROFILE))
TEXT_FRACTIONS ?= 0.15 0.30

# Results files are written to (and found in) this folder. The committed quick results are there, so on a fresh
# clone `make reproduce` finds every quick run already measured and only re-renders the notebooks and figures from
# them; RESULTS=<another folder> computes everything again there (and `make figures RESULTS=...` draws from it).
RESULTS ?= results
RESULTS_PARAM = $(if $(filter results,$(RESULTS)),,-p output_dir $(abspath $(RESULTS)))

# Trained models are cached here (keyed by everything that determines the weights) and reused.
export NABLATAU_CACHE_DIR ?= $(CURDIR)/checkpoints
# Data sets are read from (and downloaded to) here; CI points it at ../shared/data.
export NABLATAU_DATA_DIR ?= $(CURDIR)/data

space := $(subst ,, )
comma := ,
SEED_LIST := [$(subst $(space),$(comma),$(strip $(SEEDS)))]
SEED_TAG := seeds$(subst $(space),_,$(strip $(SEEDS)))
IMAGE_RUN = -p dataset $(DATASET) -p profile $(PROFILE) -y "seeds: $(SEED_LIST)" $(RESULTS_PARAM)

.PHONY: install test test-fast reproduce image-experiments paper-point figures benchmark clean

install: $(STAMP)

# The package with its dev extra, under constraints.txt: the exact versions the committed evidence ran on.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# The notebooks run (nbval) from a copy in a temporary folder: their smoke results (../results from there) and
# the models they train land there, never in the repository's results/ or checkpoints/. -rs prints why a test
# was skipped (the GPU tests, where there is no GPU).
test: $(STAMP)
	@scratch=$$(mktemp -d) && mkdir $$scratch/notebooks && cp notebooks/*.ipynb $$scratch/notebooks/ && \
	  echo "notebooks run in $$scratch/notebooks" && \
	  HF_HUB_OFFLINE=1 NABLATAU_CACHE_DIR=$$scratch/checkpoints $(BIN)/python -m pytest -rs --nbval-lax tests nablatau \
	    $$scratch/notebooks/*.ipynb; status=$$?; rm -rf $$scratch; exit $$status

# Needs the environment only when it is missing: an existing one is used as it is, never reinstalled
# from this checkout, so `make test-fast VENV=<another checkout>/.venv` only runs the tests.
# One torch thread: these tests run tiny models, where a second thread only waits for the first, and on
# 2 shared cores it spins (measured with two other jobs running: 171 s with the default threads, 100 s with one).
test-fast: $(if $(wildcard $(STAMP)),,$(STAMP))
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" tests nablatau

# With RAY_ADDRESS set (Ray's own convention), the whole grid is computed first as Ray tasks on that cluster
# (python -m nablatau.grid: trainings on a GPU each, then every method and measurement); the notebooks then find
# every result and only render. NABLATAU_CACHE_DIR, NABLATAU_DATA_DIR and RESULTS must then be storage every node
# reads. Without RAY_ADDRESS each notebook computes what it lacks, here.
reproduce: $(STAMP)
	mkdir -p $(EXECUTED)
	@if [ -n "$$RAY_ADDRESS" ]; then \
	  datasets=cifar10; \
	  if $(BIN)/python -c "import nablatau; nablatau.load_cifar('cifar100')" 2>/dev/null; then datasets="cifar10 cifar100"; fi; \
	  echo "RAY_ADDRESS=$$RAY_ADDRESS: computing the grid on $$datasets as Ray tasks on that cluster first"; \
	  $(BIN)/python -m nablatau.grid --profile $(PROFILE) --seeds $(SEEDS) --datasets $$datasets \
	    --fractions $(FRACTIONS) --forget-classes $(FORGET_CLASSES) --text-fractions $(TEXT_FRACTIONS) \
	    --output $(RESULTS) || exit 1; \
	fi
	$(PAPERMILL) notebooks/quickstart.ipynb $(EXECUTED)/quickstart-$(PROFILE).ipynb -p profile $(PROFILE) \
	  $(RESULTS_PARAM)
	$(MAKE) --no-print-directory image-experiments DATASET=cifar10
	@if $(BIN)/python -c "import nablatau; nablatau.load_cifar('cifar100')" 2>$(EXECUTED)/.cifar100-error; then \
	  $(MAKE) --no-print-directory image-experiments DATASET=cifar100; \
	else \
	  echo "CIFAR-100 skipped: it is not in $$NABLATAU_DATA_DIR/cifar100 and could not be downloaded:"; \
	  tail -n 1 $(EXECUTED)/.cifar100-error; \
	fi
	for fraction in $(TEXT_FRACTIONS); do \
	  $(PAPERMILL) notebooks/text_removal.ipynb $(EXECUTED)/text_removal-$(PROFILE)-$$fraction-$(SEED_TAG).ipynb \
	    -p profile $(PROFILE) -p forget_fraction $$fraction -y "seeds: $(SEED_LIST)" $(RESULTS_PARAM) || exit 1; \
	done
	$(PAPERMILL) notebooks/alpha_split_sweep.ipynb $(EXECUTED)/alpha_split_sweep-$(PROFILE)-$(SEED_TAG).ipynb \
	  -p profile $(PROFILE) -y "split_seeds: $(SEED_LIST)" $(RESULTS_PARAM)
	$(MAKE) --no-print-directory figures

# One data set's image experiments: the original model, subset removal at every fraction, class removal.
image-experiments: $(STAMP)
	mkdir -p $(EXECUTED)
	for seed in $(SEEDS); do \
	  $(PAPERMILL) notebooks/train_original.ipynb $(EXECUTED)/train_original-$(DATASET)-$(PROFILE)-seed$$seed.ipynb \
	    -p dataset $(DATASET) -p profile $(PROFILE) -y "seeds: [$$seed]" $(RESULTS_PARAM) || exit 1; \
	done
	for fraction in $(FRACTIONS); do \
	  $(PAPERMILL) notebooks/subset_removal.ipynb \
	    $(EXECUTED)/subset_removal-$(DATASET)-$(PROFILE)-$$fraction-$(SEED_TAG).ipynb $(IMAGE_RUN) \
	    -p forget_fraction $$fraction || exit 1; \
	done
	$(PAPERMILL) notebooks/class_removal.ipynb \
	  $(EXECUTED)/class_removal-$(DATASET)-$(PROFILE)-$(subst $(space),_,$(FORGET_CLASSES))-$(SEED_TAG).ipynb \
	  $(IMAGE_RUN) -y "forget_classes: [$(subst $(space),$(comma),$(FORGET_CLASSES))]"

# One paper-scale data point on the CPU: full CIFAR-10, the paper's 50-epoch recipe with augmentation,
# 15 % forgotten, seed 1, ∇τ, finetuning and SSD against the original and the retrained model. Hours per
# training on 2 cores: every training keeps its per-epoch progress beside the checkpoint cache, so rerunning
# this target after an interruption on the same machine continues where it stopped. TRAIN_EPOCHS=10 shortens
# the two trainings (nothing else) where the time for them is lacking; the notebook and results file say so.
TRAIN_EPOCHS ?=
PAPER_POINT_TAG := $(if $(TRAIN_EPOCHS),-train$(TRAIN_EPOCHS)ep,)
paper-point: $(STAMP)
	mkdir -p $(EXECUTED)
	$(PAPERMILL) notebooks/subset_removal.ipynb $(EXECUTED)/subset_removal-cifar10-paper-0.15-seeds1$(PAPER_POINT_TAG).ipynb \
	  -p dataset cifar10 -p profile paper -p forget_fraction 0.15 -y "seeds: [1]" \
	  -y "methods: [nablatau, finetune, ssd]" $(if $(TRAIN_EPOCHS),-p train_epochs $(TRAIN_EPOCHS)) $(RESULTS_PARAM)
	$(MAKE) --no-print-directory figures PROFILE=paper

# Then the README's results at a glance, between its markers, from the quick results (the committed evidence).
figures: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m nablatau.figures --results $(RESULTS) --figures figures --profile $(PROFILE)
	$(BIN)/python -m nablatau.glance --results $(RESULTS) --figures figures --readme README.md --profile quick

benchmark: $(STAMP)
	$(BIN)/python benchmarks/unlearn_vs_retrain.py
	$(BIN)/python benchmarks/sweep_throughput.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/quick_profile_size.py 3500:1 3500:2 3500:3

clean:
	rm -rf $(VENV) *.egg-info
