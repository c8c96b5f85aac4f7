using PrefPipe.Benchmarks;

namespace PrefPipe.Bench;

/// <summary>
/// The model-stack suite of <c>prefpipe bench</c> (src/Benchmarks) on this machine's CPU with the small model: DPO and
/// SFT steps, optimizer, PPO, generation, reference and reward passes at CI-friendly sizes. On a GPU use
/// <c>prefpipe bench all --device cuda</c> (or bench/gpu/run.sh for the PyTorch peers).
/// </summary>
public sealed class ModelPerfBench : IBenchmark
{
    public string Name => "model-perf";

    public string Description => "DPO/SFT/PPO steps, optimizer, generation, reference and reward passes (small model, CPU, 4x128 tokens)";

    public Task<IReadOnlyList<BenchFigure>> RunAsync(CancellationToken cancellationToken = default)
    {
        var options = new PerfOptions { Device = "cpu", Model = "small", Batch = 4, SeqLen = 128, GenerationBatches = [1, 8], PromptTokens = 32, NewTokens = 32, Steps = 3, Warmup = 1 };
        var figures = new List<BenchFigure>();
        foreach (string name in PerfSuite.Names.Where(n => n != "overhead"))
        {
            foreach (var f in PerfSuite.Run(name, options, Console.WriteLine, cancellationToken))
                figures.Add(new BenchFigure(f.Benchmark, f.Case, f.Metric, f.Value, f.Unit));
        }
        return Task.FromResult<IReadOnlyList<BenchFigure>>(figures);
    }
}
