using System.Diagnostics;

namespace PrefPipe.Models.Runtime;

/// <summary>
/// Wall time spent inside model compute — generation, scoring forward passes, reward-model sessions, backward passes and
/// optimizer steps — so a caller can tell how much of a stage went to everything else (tokenisation, Parquet I/O,
/// batching and bookkeeping in managed code). A caller opens a <see cref="Meter"/> around its work; the model stack
/// marks its compute with <see cref="Measure"/>. Nested sections on one thread count once. On CUDA, kernels run
/// asynchronously, so time lands where the host next waits for the device: figures are exact on CPU and approximate there.
/// </summary>
public static class ComputeClock
{
    private static readonly AsyncLocal<Meter?> CurrentMeter = new();

    [ThreadStatic]
    private static int t_depth;

    /// <summary>Starts a meter for the calling flow and everything it awaits or starts; replaces any meter already open in it.</summary>
    public static Meter Start()
    {
        var meter = new Meter();
        CurrentMeter.Value = meter;
        return meter;
    }

    /// <summary>Marks a section of model compute; dispose it when the section ends. Free when no meter is open.</summary>
    public static Section Measure()
    {
        var meter = CurrentMeter.Value;
        if (meter is null) return default;
        // Inner sections only keep the count; the outermost one on this thread measures.
        return t_depth++ > 0 ? new Section(null, 0, counted: true) : new Section(meter, Stopwatch.GetTimestamp(), counted: true);
    }

    /// <summary>Accumulated model-compute time of one flow (thread-safe: parallel sections add up).</summary>
    public sealed class Meter
    {
        private long _ticks;

        /// <summary>Seconds inside model compute so far.</summary>
        public double Seconds => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _ticks)).TotalSeconds;

        internal void Add(long ticks) => Interlocked.Add(ref _ticks, ticks);
    }

    /// <summary>An open section; ends on dispose.</summary>
    public readonly struct Section : IDisposable
    {
        private readonly Meter? _meter;
        private readonly long _start;
        private readonly bool _counted;

        internal Section(Meter? meter, long start, bool counted)
        {
            _meter = meter;
            _start = start;
            _counted = counted;
        }

        /// <inheritdoc />
        public void Dispose()
        {
            if (!_counted) return;
            t_depth--;
            _meter?.Add(Stopwatch.GetTimestamp() - _start);
        }
    }
}
