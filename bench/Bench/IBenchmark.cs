namespace PrefPipe.Bench;

/// <summary>One figure a benchmark measured.</summary>
/// <param name="Benchmark">The benchmark's name.</param>
/// <param name="Case">The case within it, e.g. "batch=8".</param>
/// <param name="Metric">What was measured, e.g. "tokens/s".</param>
/// <param name="Value">The number.</param>
/// <param name="Unit">Its unit.</param>
public sealed record BenchFigure(string Benchmark, string Case, string Metric, double Value, string Unit);

/// <summary>A benchmark the runner discovers by reflection: a public sealed class with a parameterless constructor.</summary>
public interface IBenchmark
{
    /// <summary>Short name used on the command line.</summary>
    string Name { get; }

    /// <summary>What it measures, in one line.</summary>
    string Description { get; }

    /// <summary>Runs the workload and returns its figures.</summary>
    Task<IReadOnlyList<BenchFigure>> RunAsync(CancellationToken cancellationToken = default);
}
