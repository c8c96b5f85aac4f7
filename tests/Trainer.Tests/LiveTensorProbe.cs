using TorchSharp;

namespace PrefPipe.Trainer.Tests;

/// <summary>
/// Records how many native tensors are live on the training thread when given steps end, through the trainer's progress
/// callback (it runs synchronously on the training thread between steps).
/// </summary>
/// <remarks>
/// The count is TorchSharp's per-thread tally (tensors created minus tensors disposed on this thread): other tests
/// running in parallel do not move it, and a tensor nobody disposed stays counted even after the GC's finalizer frees it,
/// so a leak shows however the finalizer happens to run.
/// </remarks>
internal sealed class LiveTensorProbe(params long[] steps) : IProgress<TrainProgress>
{
    private readonly int _thread = Environment.CurrentManagedThreadId;

    /// <summary>Live tensors on this thread now.</summary>
    public static long Live => DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount;

    /// <summary>Step → live tensors after it.</summary>
    public Dictionary<long, long> Counts { get; } = [];

    public void Report(TrainProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        // The tally is per thread: a report from elsewhere would compare two different threads' counts.
        if (Environment.CurrentManagedThreadId != _thread)
            throw new InvalidOperationException("progress was reported on another thread than the one that started training");
        if (steps.Contains(value.Step)) Counts[value.Step] = Live;
    }
}
