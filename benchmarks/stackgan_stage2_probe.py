"""Stage-II probe (issue 12): from a stackgan_shapes checkpoint at the end of Stage-I, run Stage-II steps with the
trainer's own jitted step and write, per probed step, one JSON line: per-module gradient and update norms of g2 and
d2, G2's training pictures (mean, std across the batch), D2's logits, and D2's input gradient on G2's pictures
(its norm, the share of its energy in each picture's uniform brightness, its cosine with the way to the real
pictures' mean) with D2's logits for the fakes shifted by -0.5, -0.25, +0.25. At the end: eval-mode pictures of
both stages for one batch's captions (statistics, and OUT.png).

  python launch.py --experiment=stackgan_shapes --workdir=BASE --config.model.pretrain_steps=300 \
      --config.model.stage1_steps=1000 --config.train.steps=1300          # the Stage-I checkpoint at 1300
  PYTHONPATH=. python benchmarks/stackgan_stage2_probe.py BASE STEPS:PROBED OUT.jsonl [config.path=value ...]
      [DARKINIT] [EVAL]

STEPS Stage-II steps, the first PROBED (then every 50th) probed. config overrides apply to Stage-II (groups whose
shapes still match are taken from the checkpoint, the others start fresh, e.g. model.d_channels=8 gives a new D2).
DARKINIT (a diagnostic, not a method): G2 starts dark (its last BatchNorm's beta + 1, its last conv's kernel
negative). EVAL: also the configured metrics at the end (trains the caption classifier once if not cached).
"""
import ast
import copy
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

import experiments
from gans import data, evaluation, report, sampling, sharding, steps
from gans.run import default_compilation_cache, use_compilation_cache
from gans.run import Setup, stream_key, TRAIN_STREAM


def override(config, assignment):
  path, value = assignment.split("=", 1)
  node = config
  *parents, last = path.split(".")
  for name in parents:
    node = node[name]
  try:
    value = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    pass
  with config.unlocked():
    node[last] = value


def module_norms(tree):
  """{top-level module (or d2's encode_img/<i>): l2 norm} of a params tree."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    keys = [p.key for p in path]
    name = "/".join(keys[:2]) if keys[0] == "encode_img" else keys[0]
    out[name] = out.get(name, 0.0) + float(jnp.sum(jnp.square(leaf)))
  return {k: round(v ** 0.5, 6) for k, v in sorted(out.items())}


def graft(initial, restored):
  """initial with every group of restored whose shapes match (params and model_state), at restored's step."""
  same = lambda a, b: jax.tree.structure(a) == jax.tree.structure(b) and all(
      x.shape == y.shape for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  params = {g: restored.params[g] if same(v, restored.params[g]) else v for g, v in initial.params.items()}
  model_state = {g: restored.model_state[g] if g != "hyperparameters" and g in restored.model_state and
                 same(v, restored.model_state[g]) else v for g, v in initial.model_state.items()}
  print("grafted params", [g for g in params if params[g] is restored.params[g]], flush=True)
  return initial.replace(step=restored.step, params=params, model_state=model_state)


def stage_stats(setup, state, host):
  """Eval-mode pictures of both stages for a batch's captions (same z): Stage-II's statistics against the
  upsampled Stage-I pictures and the real ones; the first 4 row pairs saved as <out>.png."""
  params, model_state = steps.sampling_params(state), state.model_state
  rows = np.asarray(jax.jit(setup.variant.pictures["stages"])(params, model_state, jax.random.key(7),
                                                                caption=jnp.asarray(host["caption"][0])))
  stage1, stage2 = rows[0::2].reshape((-1,) + rows.shape[2:]), rows[1::2].reshape((-1,) + rows.shape[2:])
  real = host["image"][0]
  corr = np.corrcoef(stage1.reshape(-1), stage2.reshape(-1))[0, 1]
  report.save_png(os.path.abspath(sys.argv[3]).replace(".jsonl", ".png"), sampling.grid_picture(rows[:8]))
  return {"stage2_mean": float(stage2.mean()), "stage1_mean": float(stage1.mean()), "real_mean": float(real.mean()),
          "stage2_batch_std": float(stage2.std(0).mean()), "stage1_batch_std": float(stage1.std(0).mean()),
          "real_batch_std": float(real.std(0).mean()), "corr_stage2_stage1": float(corr),
          "stage2_bright": float((stage2 > 0).mean()), "stage1_bright": float((stage1 > 0).mean()),
          "real_bright": float((real > 0).mean()),
          "mae_stage2_stage1": float(np.abs(stage2 - stage1).mean())}


def main():
  use_compilation_cache(default_compilation_cache())
  base, n, out_path, *assignments = sys.argv[1:]
  n, probe_steps = (int(v) for v in n.split(":"))  # total Stage-II steps : steps probed (then every 50th)
  evaluate = "EVAL" in assignments
  dark = "DARKINIT" in assignments
  assignments = [a for a in assignments if a not in ("EVAL", "DARKINIT")]
  base_config = experiments.get_config("stackgan_shapes")
  for a in ("model.pretrain_steps=300", "model.stage1_steps=1000", "train.steps=100000"):
    override(base_config, a)
  config = copy.deepcopy(base_config)
  for a in assignments:
    override(config, a)
  base_setup = Setup(base_config)
  _, restored, data_state, start = base_setup.restore_latest(base)
  setup = Setup(config) if assignments else base_setup
  state = graft(setup.initial_state, restored) if assignments else restored
  variant = setup.variant
  if dark:  # diagnostic: G2 starting dark (last BN's beta +1, last conv's kernel negative): not a fix
    g2 = jax.tree.map(lambda x: x, state.params["g2"])
    g2["upsample3"]["2"]["bias"] = g2["upsample3"]["2"]["bias"] + 1.0
    g2["img_0"]["kernel"] = -jnp.abs(g2["img_0"]["kernel"]) - 0.02
    state = state.replace(params={**state.params, "g2": g2})
  iterator = data.make_iterator(config.data, batch_size=config.train.batch_size, seed=config.seed)
  iterator.set_state(data_state)
  base_key = stream_key(config.seed, TRAIN_STREAM)
  phase_names = steps.due_phases(variant, start)
  print("phases", phase_names, "start", start, flush=True)
  train_step = setup.train_step(phase_names)
  phases = [(i, p) for i, p in enumerate(variant.phases) if p.name in phase_names]

  @jax.jit
  def probe(state, batches):
    """Grad norms of each phase at the state, as the step computes them (D first; G's with D's update)."""
    step_key = jax.random.fold_in(base_key, state.step)
    batch = jax.tree.map(lambda x: x[0], batches)
    prepared = variant.prepare(state.params, state.model_state, batch,
                               jax.random.fold_in(step_key, len(variant.phases)), phase_names)
    result = {}
    params = state.params
    for index, phase in phases:
      key = jax.random.fold_in(jax.random.fold_in(step_key, index), 0)
      group = phase.updates[0]
      def loss_fn(p):
        return phase.loss({**params, group: p}, state.model_state, prepared, key)
      (loss, (metrics, _)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params[group])
      result[phase.name] = {"loss": loss, "metrics": metrics, "grads": grads}
    fake, mu, logvar = prepared["generated"].outputs
    d2 = variant.modules["d2"]
    d2_vars = {"params": params["d2"], **state.model_state["d2"]}
    def g_adv_of_image(img):
      apply = lambda *a, method: d2.apply(d2_vars, *a, train=True, method=method, mutable=["batch_stats"])[0]
      h = apply(img, method="encode")
      c = apply(h, jax.lax.stop_gradient(mu), method="cond_logits")
      u = apply(h, method="uncond_logits")
      return jnp.mean(jax.nn.softplus(-c)) + jnp.mean(jax.nn.softplus(-u)), (jnp.mean(c), jnp.mean(u))
    g = jax.grad(lambda x: g_adv_of_image(x)[0])(fake)
    dc = jnp.mean(g, axis=(1, 2), keepdims=True)
    result["img_grad_norm"] = jnp.sqrt(jnp.sum(g ** 2))
    result["img_grad_dc_fraction"] = jnp.sum(jnp.square(jnp.broadcast_to(dc, g.shape))) / jnp.sum(g ** 2)
    result["img_grad_mean"] = jnp.mean(g)  # > 0: G's descent darkens
    towards_real = jnp.mean(batch["image"], axis=0, keepdims=True) - fake
    result["img_grad_cos_to_real"] = -jnp.sum(g * towards_real) / jnp.sqrt(jnp.sum(g ** 2) * jnp.sum(towards_real ** 2))
    for delta in (-0.5, -0.25, 0.25):
      result[f"logits_offset{delta}"] = jnp.stack(g_adv_of_image(jnp.clip(fake + delta, -1, 1))[1])
    result["logits_offset0"] = jnp.stack(g_adv_of_image(fake)[1])
    result["fake_mean"] = jnp.mean(fake)
    result["fake_batch_std"] = jnp.mean(jnp.std(fake, axis=0))
    result["fake_pixel_std"] = jnp.mean(jnp.std(fake, axis=(1, 2, 3)))
    result["fake_saturated"] = jnp.mean(jnp.abs(fake) > 0.99)
    result["real_mean"] = jnp.mean(batch["image"])
    result["mu_abs"] = jnp.mean(jnp.abs(mu))
    result["logvar_mean"] = jnp.mean(logvar)
    return result

  batch_sharding = sharding.batch_sharding(setup.mesh, batch_axis=1)
  with open(out_path, "w") as out:
    for k in range(n):
      host = jax.tree.map(lambda *xs: np.stack(xs), *[next(iterator)])
      batches = sharding.to_global(host, batch_sharding)
      before = jax.tree.map(np.asarray, {g: state.params[g] for g in ("g2", "d2")})
      if k >= probe_steps and k % 50:
        state, metrics = train_step(state, batches, base_key)
        continue
      info = jax.device_get(probe(state, batches))
      state, metrics = train_step(state, batches, base_key)
      after = jax.device_get({g: state.params[g] for g in ("g2", "d2")})
      record = {"k": k, "step": int(state.step)}
      for key in [k for k in info if k.startswith("img_grad") or k.startswith("logits_offset")]:
        record[key] = np.round(np.asarray(info[key], np.float64), 5).tolist()
      for key in ("fake_mean", "fake_batch_std", "fake_pixel_std", "fake_saturated", "real_mean", "mu_abs",
                  "logvar_mean"):
        record[key] = round(float(info[key]), 5)
      for name in ("d_stage2", "g_stage2"):
        record[name] = {m: round(float(v), 5) for m, v in info[name]["metrics"].items()}
        record[name]["loss"] = round(float(info[name]["loss"]), 5)
        record[name + "_grad"] = module_norms(info[name]["grads"])
      record["g2_update"] = module_norms(jax.tree.map(lambda a, b: a - b, after["g2"], before["g2"]))
      record["d2_update"] = module_norms(jax.tree.map(lambda a, b: a - b, after["d2"], before["d2"]))
      record["g2_param"] = module_norms(after["g2"])
      out.write(json.dumps(record) + "\n")
      out.flush()
      print(k, record["fake_mean"], record["fake_batch_std"], record["d_stage2"], record["g_stage2"], flush=True)
    stats = stage_stats(setup, state, host)
    out.write(json.dumps({"stats_step": int(state.step), **stats}) + "\n")
    print("STATS", int(state.step), json.dumps(stats), flush=True)
    if evaluate:
      results = evaluation.evaluate_state(setup, state)
      out.write(json.dumps({"eval_step": int(state.step), **{k: float(v) for k, v in results.items()}}) + "\n")
      print("EVAL", int(state.step), json.dumps(results), flush=True)


if __name__ == "__main__":
  main()
