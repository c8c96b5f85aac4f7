"""PyTorch-eager peers of `prefpipe bench`: same shapes, batch, dtype (bf16 on CUDA) and sequence lengths.

DPO/SFT/PPO steps: transformers' LlamaForCausalLM (SDPA attention) in eager mode, full logits -> float -> log_softmax ->
gather (as TRL does), torch.optim.AdamW(foreach=True). Generation: transformers generate(), greedy. Peak memory: NVML
device used memory sampled every 2 ms (as ours), plus torch.cuda.max_memory_allocated for reference.

usage: python3 peer.py NAME [--json FILE] [--batch 8 --seq 1024] [--gen-batches 1 8 32 64]
"""
import argparse, json, statistics, threading, time

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

PEAK = 989e12
SHAPES = {
    "8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=500000.0,
               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192},
               max_position_embeddings=131072, tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001),
    "1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0,
               rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192},
               max_position_embeddings=131072, tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001),
    "small": dict(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=64, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=4096,
                  tie_word_embeddings=True, bos_token_id=1, eos_token_id=2),
}


class Nvml:
    def __init__(self):
        self.peak = -1
        try:
            import pynvml
            pynvml.nvmlInit()
            self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.nv = pynvml
        except Exception:
            self.nv = None
            return
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def sample(self):
        used = self.nv.nvmlDeviceGetMemoryInfo(self.h).used
        self.peak = max(self.peak, used)

    def run(self):
        while not self.stop:
            self.sample()
            time.sleep(0.002)

    def mib(self):
        if self.nv is None:
            return -1
        self.sample()
        return self.peak / 2**20


def make_config(shape):
    c = LlamaConfig(**SHAPES[shape])
    c._attn_implementation = "sdpa"
    return c


def make_model(c, seed=1):
    torch.manual_seed(seed)
    with torch.device("cuda"):
        m = LlamaForCausalLM(c).to(torch.bfloat16)
    return m


def matmul_params(c):
    h, q, kv = c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    return c.num_hidden_layers * (h * q + 2 * h * kv + q * h + 3 * h * c.intermediate_size) + h * c.vocab_size


def fwd_flops(c, b, s):
    return 2 * matmul_params(c) * b * s + 2.0 * b * s * s * c.num_attention_heads * c.head_dim * c.num_hidden_layers


def time_ms(step, steps=5, warmup=2):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def figures(bench, case, ms, tokens, flops, mem):
    out = [dict(Benchmark=bench, Case=case, Metric="time", Value=ms, Unit="ms"),
           dict(Benchmark=bench, Case=case, Metric="throughput", Value=tokens / (ms / 1000), Unit="tokens/s"),
           dict(Benchmark=bench, Case=case, Metric="peak memory", Value=mem.mib(), Unit="MiB (device)"),
           dict(Benchmark=bench, Case=case, Metric="max allocated (torch)", Value=torch.cuda.max_memory_allocated() / 2**20, Unit="MiB")]
    if flops > 0:
        out.append(dict(Benchmark=bench, Case=case, Metric="MFU", Value=100 * flops / (ms / 1000) / PEAK, Unit="%"))
    print(f"  peer {bench} {case}: {ms:.1f} ms, {tokens / (ms / 1000):.0f} tokens/s", flush=True)
    return out


def seq_logps(model, ids, prompt):
    """Sum of completion-token log-probs per row: full logits, float32 log_softmax, gather (TRL's way)."""
    logits = model(input_ids=ids).logits[:, :-1].float()
    logp = logits.log_softmax(-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return logp[:, prompt - 1:].sum(-1), logp[:, prompt - 1:]


def rand_ids(c, b, s, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, c.vocab_size, (b, s), generator=g).cuda()


def dpo(c, a):
    out = []
    b, s = a.batch, a.seq
    pairs = b // 2
    ids = rand_ids(c, b, s, 11)
    for stored in (False, True):
        mem = Nvml()
        torch.cuda.reset_peak_memory_stats()
        policy = make_model(c)
        policy.train()
        ref = None if stored else make_model(c).eval()
        opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, weight_decay=0.0, foreach=True)
        with torch.no_grad():
            stored_logp = seq_logps(policy, ids, s // 2)[0]

        def step():
            if ref is not None:
                with torch.no_grad():
                    r = seq_logps(ref, ids, s // 2)[0]
            else:
                r = stored_logp
            p = seq_logps(policy, ids, s // 2)[0]
            h = 0.1 * ((p[:pairs] - r[:pairs]) - (p[pairs:] - r[pairs:]))
            (-F.logsigmoid(h)).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        ms = time_ms(step, a.steps)
        f = fwd_flops(c, b, s)
        out += figures("dpo", f"{'stored-ref' if stored else 'ref-every-step'} {b}x{s}", ms, b * s, 3 * f + (0 if stored else f), mem)
        del policy, ref, opt
        torch.cuda.empty_cache()
    return out


class LoraLinear(torch.nn.Module):
    """Plain-torch LoRA on a frozen nn.Linear, as PEFT's LoraLayer computes it (PEFT is not installed on the GPU host):
    y = W x + scaling * B(A(dropout(x))), A [r, in] kaiming-uniform(a=sqrt 5), B [out, r] zeros, both float32 beside a bf16 base."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scaling, self.enabled = base, alpha / r, True
        self.lora_A = torch.nn.Parameter(torch.empty(r, base.in_features, device=base.weight.device, dtype=torch.float32))
        self.lora_B = torch.nn.Parameter(torch.zeros(base.out_features, r, device=base.weight.device, dtype=torch.float32))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)

    def forward(self, x):
        y = self.base(x)
        if not self.enabled:
            return y
        return y + (F.linear(F.linear(x.float(), self.lora_A), self.lora_B) * self.scaling).to(y.dtype)


def add_lora(model, r, alpha, targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")):
    model.requires_grad_(False)
    layers = []
    for name, module in list(model.named_modules()):
        for child, sub in list(module.named_children()):
            if isinstance(sub, torch.nn.Linear) and child in targets:
                wrapped = LoraLinear(sub, r, alpha)
                setattr(module, child, wrapped)
                layers.append(wrapped)
    return layers


def lora(c, a):
    """DPO with LoRA (all-linear, alpha 2r) on the frozen bf16 model, the reference = the same model with the adapters off
    in every step (TRL + PEFT's default), optionally with gradient checkpointing (non-reentrant, as TRL's default)."""
    b, s = a.batch, a.seq
    pairs = b // 2
    ids = rand_ids(c, b, s, 11)
    mem = Nvml()
    torch.cuda.reset_peak_memory_stats()
    policy = make_model(c)
    layers = add_lora(policy, a.lora_r, 2 * a.lora_r)
    policy.train()
    if a.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        policy.enable_input_require_grads()
    params = [p for l in layers for p in (l.lora_A, l.lora_B)]
    opt = torch.optim.AdamW(params, lr=1e-6, weight_decay=0.0, foreach=True)

    def step():
        with torch.no_grad():
            for l in layers:
                l.enabled = False
            r = seq_logps(policy, ids, s // 2)[0]
            for l in layers:
                l.enabled = True
        p = seq_logps(policy, ids, s // 2)[0]
        h = 0.1 * ((p[:pairs] - r[:pairs]) - (p[pairs:] - r[pairs:]))
        (-F.logsigmoid(h)).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms = time_ms(step, a.steps)
    f = fwd_flops(c, b, s)
    case = f"lora-r{a.lora_r}{'+ckpt' if a.gradient_checkpointing else ''} ref-every-step {b}x{s}"
    return figures("lora", case, ms, b * s, 3 * f + (f if a.gradient_checkpointing else 0), mem)


def sft(c, a):
    mem = Nvml()
    b, s = a.batch, a.seq
    ids = rand_ids(c, b, s, 12)
    policy = make_model(c).train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-5, weight_decay=0.0, foreach=True)

    def step():
        loss = policy(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms = time_ms(step, a.steps)
    return figures("sft", f"{b}x{s}", ms, b * s, 3 * fwd_flops(c, b, s), mem)


def optimizer(c, a):
    mem = Nvml()
    model = make_model(c)
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    out = []
    for name, kw in (("foreach-adamw", dict(foreach=True)), ("fused-adamw", dict(fused=True))):
        opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0, **kw)
        ms = time_ms(opt.step, a.steps)
        out += [f for f in figures("optimizer", f"{name} {n / 1e6:.0f}M", ms, 0, 0, mem) if f["Metric"] != "throughput"]
        del opt
    return out


def generate(c, a):
    out = []
    model = make_model(c).eval()
    for b in a.gen_batches:
        mem = Nvml()
        ids = rand_ids(c, b, a.prompt, 21)
        att = torch.ones_like(ids)

        def run():
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=att, max_new_tokens=a.new, min_new_tokens=a.new,
                               do_sample=False, pad_token_id=0, eos_token_id=None)

        ms = time_ms(run, 3 if b <= 8 else 2, 1)
        label = f"batch={b} prompt={a.prompt} new={a.new}"
        out += figures("generate", label, ms, b * a.new, fwd_flops(c, b, a.prompt + a.new), mem)

        def one():
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=att, max_new_tokens=1, min_new_tokens=1,
                               do_sample=False, pad_token_id=0, eos_token_id=None)

        pre = time_ms(one, 3, 1)
        out.append(dict(Benchmark="generate", Case=label, Metric="prefill+1", Value=pre, Unit="ms"))
        out.append(dict(Benchmark="generate", Case=label, Metric="decode step", Value=(ms - pre) / (a.new - 1), Unit="ms"))
    return out


def refpass(c, a):
    mem = Nvml()
    b, s = a.batch, a.seq
    ids = rand_ids(c, b, s, 13)
    model = make_model(c).eval()

    def step():
        with torch.no_grad():
            seq_logps(model, ids, s // 2)

    ms = time_ms(step, a.steps)
    return figures("refpass", f"{b}x{s}", ms, b * s, fwd_flops(c, b, s), mem)


def reward(c, a):
    mem = Nvml()
    b, s = a.batch, a.seq
    ids = rand_ids(c, b, s, 14)
    model = make_model(c).eval()
    head = torch.nn.Linear(c.hidden_size, 1, bias=False, device="cuda", dtype=torch.bfloat16)

    def step():
        with torch.no_grad():
            h = model.model(input_ids=ids).last_hidden_state
            head(h[:, -1]).squeeze(-1).float().cpu()

    ms = time_ms(step, a.steps)
    return figures("reward", f"{b}x{s}", ms, b * s, fwd_flops(c, b, s) - 2.0 * c.hidden_size * c.vocab_size * b * s, mem)


def ppo(c, a):
    mem = Nvml()
    b, seq = a.batch, a.prompt + a.new
    policy = make_model(c)
    ref = make_model(c).eval()
    rm = make_model(c, 2).eval()
    head = torch.nn.Linear(c.hidden_size, 1, bias=False, device="cuda", dtype=torch.bfloat16)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, weight_decay=0.0, foreach=True)
    prompts = rand_ids(c, b, a.prompt, 31)
    state = {}

    def rollout():
        policy.eval()
        with torch.no_grad():
            seqs = policy.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=a.new,
                                   min_new_tokens=a.new, do_sample=True, temperature=1.0, top_k=0, pad_token_id=0, eos_token_id=None)
            old = seq_logps(policy, seqs, a.prompt)[1]
            r = seq_logps(ref, seqs, a.prompt)[1]
            score = head(rm.model(input_ids=seqs).last_hidden_state[:, -1]).squeeze(-1).float()
            kl = (old - r).mean()
            state.update(seqs=seqs, old=old, adv=score - score.mean() - 0.05 * kl)

    def update():
        policy.train()
        new = seq_logps(policy, state["seqs"], a.prompt)[1]
        ratio = (new - state["old"]).exp()
        adv = state["adv"].unsqueeze(1)
        loss = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out = []
    ms = time_ms(rollout, 2, 1)
    out += figures("ppo", f"rollout batch={b} prompt={a.prompt} new={a.new}", ms, b * a.new, 4 * fwd_flops(c, b, seq), mem)
    ms = time_ms(update, a.steps)
    out += figures("ppo", f"update {b}x{seq}", ms, b * seq, 3 * fwd_flops(c, b, seq), mem)
    return out


def overhead(c, a):
    n = 20000
    x = torch.ones(1, dtype=torch.bfloat16, device="cuda")

    def inplace():
        for _ in range(n):
            x.add_(1.0)

    def alloc():
        for _ in range(n // 2):
            y = x * 2.0
            _ = y + 1.0

    a_us = time_ms(inplace, 3, 1) * 1000 / n
    b_us = time_ms(alloc, 3, 1) * 1000 / n
    print(f"  peer overhead: in-place {a_us:.2f} us/op, allocating {b_us:.2f} us/op", flush=True)
    return [dict(Benchmark="overhead", Case="in-place add_, 1 element", Metric="per op", Value=a_us, Unit="us"),
            dict(Benchmark="overhead", Case="x*2 then +1 in a dispose scope", Metric="per op", Value=b_us, Unit="us")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("--json")
    p.add_argument("--model", default="1b")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--gen-batches", type=int, nargs="*", default=[1, 8, 32, 64])
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--gradient-checkpointing", action="store_true")
    a = p.parse_args()
    c = make_config(a.model)
    import transformers
    print(f"peer {a.name}: torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name()}", flush=True)
    figs = globals()[a.name](c, a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(device="cuda", model=a.model, torch=torch.__version__, transformers=transformers.__version__,
                           gpu=torch.cuda.get_device_name(), figures=figs), f, indent=1)


if __name__ == "__main__":
    main()
