using System.Runtime.InteropServices;

namespace PrefPipe.Benchmarks;

/// <summary>
/// Peak memory while a benchmark runs: on CUDA the device's used memory read through NVML (libnvidia-ml) every few
/// milliseconds on a background thread (context plus the caching allocator's reserve, so run one benchmark per process
/// for a clean figure); on CPU the process's peak resident set (VmHWM).
/// </summary>
internal sealed partial class DeviceMemory : IDisposable
{
    private readonly bool _cuda;
    private readonly Thread? _thread;
    private readonly IntPtr _device;
    private volatile bool _stop;
    private long _peakBytes;

    private DeviceMemory(bool cuda)
    {
        _cuda = cuda;
        if (cuda && TryInitNvml(out _device))
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
        var info = new NvmlMemory();
        if (nvmlDeviceGetMemoryInfo(_device, ref info) != 0) return;
        long used = (long)info.Used;
        long seen;
        do seen = Interlocked.Read(ref _peakBytes);
        while (used > seen && Interlocked.CompareExchange(ref _peakBytes, used, seen) != seen);
    }

    private static bool TryInitNvml(out IntPtr device)
    {
        device = IntPtr.Zero;
        try
        {
            return nvmlInit_v2() == 0 && nvmlDeviceGetHandleByIndex_v2(0, out device) == 0;
        }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; }
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

    [StructLayout(LayoutKind.Sequential)]
    private struct NvmlMemory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    [LibraryImport("libnvidia-ml.so.1")]
    private static partial int nvmlInit_v2();

    [LibraryImport("libnvidia-ml.so.1")]
    private static partial int nvmlDeviceGetHandleByIndex_v2(uint index, out IntPtr device);

    [LibraryImport("libnvidia-ml.so.1")]
    private static partial int nvmlDeviceGetMemoryInfo(IntPtr device, ref NvmlMemory memory);
}
