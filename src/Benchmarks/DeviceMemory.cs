using PrefPipe.Models.Runtime;

namespace PrefPipe.Benchmarks;

/// <summary>
/// Peak memory while a benchmark runs: on CUDA the device's used memory read through NVML (libnvidia-ml) every few
/// milliseconds on a background thread (context plus the caching allocator's reserve, so run one benchmark per process
/// for a clean figure); on CPU the process's peak resident set (VmHWM).
/// </summary>
internal sealed class DeviceMemory : IDisposable
{
    private readonly bool _cuda;
    private readonly Thread? _thread;
    private volatile bool _stop;
    private long _peakBytes;

    private DeviceMemory(bool cuda)
    {
        _cuda = cuda;
        if (cuda && DeviceMemoryInfo.Gpu() is not null)
        {
            _thread = new Thread(Sample) { IsBackground = true, Name = "nvml-sampler" };
            _thread.Start();
        }
    }

    /// <summary>Starts sampling (NVML on CUDA, else reads VmHWM at the end).</summary>
    public static DeviceMemory Start(bool cuda)
    {
        if (!cuda) ResetRssPeak();
        return new DeviceMemory(cuda);
    }

    /// <summary>Peak so far in MiB, or −1 when it cannot be read.</summary>
    public double PeakMiB()
    {
        if (!_cuda) return PeakRssMiB();
        if (_thread is null) return -1;
        SampleOnce();
        return Interlocked.Read(ref _peakBytes) / (1024.0 * 1024.0);
    }

    public void Dispose()
    {
        _stop = true;
        _thread?.Join();
    }

    private void Sample()
    {
        while (!_stop)
        {
            SampleOnce();
            Thread.Sleep(2);
        }
    }

    private void SampleOnce()
    {
        if (DeviceMemoryInfo.Gpu() is not GpuMemory memory) return;
        long used = memory.Used;
        long seen;
        do seen = Interlocked.Read(ref _peakBytes);
        while (used > seen && Interlocked.CompareExchange(ref _peakBytes, used, seen) != seen);
    }

    private static double PeakRssMiB()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return -1;
        foreach (var line in File.ReadLines(status))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
        }
        return -1;
    }

    private static void ResetRssPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
