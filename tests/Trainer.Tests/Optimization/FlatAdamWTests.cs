using PrefPipe.Trainer.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Tests.Optimization;

public sealed class FlatAdamWTests
{
    private static Sequential Model(bool bias)
    {
        torch.manual_seed(7);
        return nn.Sequential(nn.Linear(6, 5, hasBias: bias), nn.Tanh(), nn.Linear(5, 3, hasBias: bias));
    }

    private static Tensor Loss(Sequential model, int step)
    {
        var gen = new Generator((ulong)(100 + step));
        var x = randn(new long[] { 4, 6 }, generator: gen);   // [4, 6] float32
        var y = randn(new long[] { 4, 3 }, generator: gen);   // [4, 3] float32
        return nn.functional.mse_loss(model.forward(x), y);
    }

    [Fact]
    public void StepWith_FiveSteps_MatchesTorchSharpAdamW()
    {
        using var scope = NewDisposeScope();
        var ours = Model(bias: false);
        var theirs = Model(bias: false);
        using var flat = new FlatAdamW(ours.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings(WeightDecay: 0.05));
        var reference = optim.AdamW(theirs.parameters(), lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05);

        for (int step = 0; step < 5; step++)
        {
            flat.ZeroGrad();
            Loss(ours, step).backward();
            flat.StepWith(0.01);

            reference.zero_grad();
            Loss(theirs, step).backward();
            reference.step();
        }

        foreach (var ((name, a), (_, b)) in ours.named_parameters().Zip(theirs.named_parameters()))
        {
            float maxDiff = (a - b).abs().max().item<float>();
            Assert.True(maxDiff < 1e-6f, $"{name}: max |Δ| = {maxDiff}");
        }
        Assert.Equal(5, flat.Step);
    }

    [Fact]
    public void StepWith_WithBiases_MatchesStraightforwardAdamWWithoutDecayOnBiases()
    {
        using var scope = NewDisposeScope();
        var model = Model(bias: true);
        var named = model.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        var settings = new AdamWSettings(WeightDecay: 0.1);
        // Straightforward per-tensor AdamW in float64 on copies: decay only on matrices (dim ≥ 2), as HF's Trainer.
        var values = named.ToDictionary(p => p.name, p => p.parameter.data<float>().Select(v => (double)v).ToArray());
        var m = values.ToDictionary(kv => kv.Key, kv => new double[kv.Value.Length]);
        var v = values.ToDictionary(kv => kv.Key, kv => new double[kv.Value.Length]);
        using var flat = new FlatAdamW(named, settings);
        double[] lrs = [0.02, 0.015, 0.01];

        for (int step = 0; step < lrs.Length; step++)
        {
            flat.ZeroGrad();
            Loss(model, step).backward();
            var grads = named.ToDictionary(p => p.name, p => p.parameter.grad!.data<float>().Select(x => (double)x).ToArray());
            flat.StepWith(lrs[step]);

            int t = step + 1;
            foreach (var (name, param) in named)
            {
                double decay = param.dim() >= 2 ? settings.WeightDecay : 0;
                var w = values[name];
                for (int i = 0; i < w.Length; i++)
                {
                    double g = grads[name][i];
                    w[i] *= 1 - lrs[step] * decay;
                    m[name][i] = 0.9 * m[name][i] + 0.1 * g;
                    v[name][i] = 0.999 * v[name][i] + 0.001 * g * g;
                    double mHat = m[name][i] / (1 - Math.Pow(0.9, t));
                    double vHat = v[name][i] / (1 - Math.Pow(0.999, t));
                    w[i] -= lrs[step] * mHat / (Math.Sqrt(vHat) + 1e-8);
                }
            }
        }

        foreach (var (name, param) in named)
        {
            var actual = param.data<float>().ToArray();
            for (int i = 0; i < actual.Length; i++)
                Assert.True(Math.Abs(actual[i] - values[name][i]) < 2e-6, $"{name}[{i}]: {actual[i]} vs {values[name][i]}");
        }
    }

    [Fact]
    public void ClipGradNorm_MatchesTorchClipGradNorm()
    {
        using var scope = NewDisposeScope();
        var ours = Model(bias: true);
        var theirs = Model(bias: true);
        using var flat = new FlatAdamW(ours.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings());
        flat.ZeroGrad();
        (Loss(ours, 0) * 50).backward();
        (Loss(theirs, 0) * 50).backward();

        float norm = flat.ClipGradNorm(0.5).item<float>();
        double expected = nn.utils.clip_grad_norm_(theirs.parameters(), 0.5);

        Assert.Equal(expected, norm, 4);
        foreach (var (a, b) in ours.parameters().Zip(theirs.parameters()))
            Assert.True((a.grad! - b.grad!).abs().max().item<float>() < 1e-6f);
    }

    [Fact]
    public void GradNorm_MatchesTorchNormAndLeavesGradientsUnchanged()
    {
        using var scope = NewDisposeScope();
        var ours = Model(bias: true);
        var theirs = Model(bias: true);
        using var flat = new FlatAdamW(ours.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings());
        flat.ZeroGrad();
        (Loss(ours, 0) * 50).backward();
        (Loss(theirs, 0) * 50).backward();

        float norm = flat.GradNorm().item<float>();
        double expected = nn.utils.clip_grad_norm_(theirs.parameters(), 1e30); // clips nothing, returns the norm

        Assert.True(expected > 0.5);
        Assert.Equal(expected, norm, 4);
        foreach (var (a, b) in ours.parameters().Zip(theirs.parameters()))
            Assert.True((a.grad! - b.grad!).abs().max().item<float>() < 1e-6f);
    }

    [Fact]
    public void Gradients_AccumulateIntoFlatBuffer_AcrossMicroBatches()
    {
        using var scope = NewDisposeScope();
        var model = Model(bias: true);
        using var flat = new FlatAdamW(model.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings());
        flat.ZeroGrad();
        Loss(model, 0).backward();
        var once = model.parameters().Select(p => p.grad!.clone()).ToList();
        Loss(model, 0).backward();

        foreach (var (p, g) in model.parameters().Zip(once))
            Assert.True((p.grad! - 2 * g).abs().max().item<float>() < 1e-6f);
    }

    [Fact]
    public void StateDict_RoundTrip_ContinuesIdentically()
    {
        using var scope = NewDisposeScope();
        var a = Model(bias: true);
        var b = Model(bias: true);
        using var optA = new FlatAdamW(a.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings(WeightDecay: 0.01));
        for (int s = 0; s < 2; s++) { optA.ZeroGrad(); Loss(a, s).backward(); optA.StepWith(0.01); }

        using (no_grad())
            foreach (var (pa, pb) in a.parameters().Zip(b.parameters())) pb.copy_(pa);
        using var optB = new FlatAdamW(b.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings(WeightDecay: 0.01));
        optB.LoadStateDict(optA.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.clone()));
        optA.ZeroGrad(); Loss(a, 2).backward(); optA.StepWith(0.01);
        optB.ZeroGrad(); Loss(b, 2).backward(); optB.StepWith(0.01);

        Assert.Equal(3, optB.Step);
        foreach (var (pa, pb) in a.parameters().Zip(b.parameters()))
            Assert.True((pa - pb).abs().max().item<float>() < 1e-7f);
    }

    [Theory]
    [InlineData(ScheduleKind.Cosine, 0, 0.0)]
    [InlineData(ScheduleKind.Cosine, 5, 0.5)]
    [InlineData(ScheduleKind.Cosine, 10, 1.0)]
    [InlineData(ScheduleKind.Cosine, 55, 0.5)]
    [InlineData(ScheduleKind.Cosine, 100, 0.0)]
    [InlineData(ScheduleKind.Linear, 55, 0.5)]
    [InlineData(ScheduleKind.Linear, 82, 0.2)]
    [InlineData(ScheduleKind.Constant, 90, 1.0)]
    public void Schedule_WarmupThenDecay_MatchesHfFormulas(ScheduleKind kind, long step, double fraction)
    {
        var schedule = new LearningRateSchedule(2e-4, WarmupSteps: 10, TotalSteps: 100, kind);

        Assert.Equal(2e-4 * fraction, schedule.At(step), 12);
    }
}
