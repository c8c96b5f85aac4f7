using System.Globalization;
using System.Runtime.InteropServices;
using TorchSharp;

namespace PrefPipe.Models.Runtime;

/// <summary>Memory of a GPU as NVML reports it, in bytes.</summary>
/// <param name="Total">The device's memory.</param>
/// <param name="Free">Not allocated by any process.</param>
/// <param name="Used">Allocated (all processes, the CUDA context and the caching allocator's reserve included).</param>
public readonly record struct GpuMemory(long Total, long Free, long Used);

/// <summary>
/// How much memory is left to allocate: on CPU what the kernel says is available (MemAvailable), within the limit the
/// .NET runtime sees (a container's) less this process's working set; on CUDA the device's free memory through NVML
/// (libnvidia-ml, shipped with the driver). <c>PREFPIPE_DEVICE_MEMORY_GIB</c>, where set, is taken as the device's
/// memory instead (free = it less what the process holds on CPU, or less NVML's used on CUDA).
/// </summary>
public static partial class DeviceMemoryInfo
{
    /// <summary>Bytes still available on <paramref name="device"/>, or null when nothing can tell.</summary>
    public static long? Available(torch.Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        long? configured = ConfiguredBytes;
        if (device.type == DeviceType.CUDA)
        {
            var gpu = Gpu((uint)Math.Max(0, device.index));
            if (configured is long total) return Math.Max(0, total - (gpu?.Used ?? 0));
            return gpu?.Free;
        }
        long working = Environment.WorkingSet;
        long limit = configured ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        long available = limit - working;
        if (configured is null && MemAvailable() is long kernel) available = Math.Min(available, kernel);
        return Math.Max(0, available);
    }

    /// <summary>The device's memory as <c>PREFPIPE_DEVICE_MEMORY_GIB</c> gives it, in bytes; null when unset or not a number.</summary>
    public static long? ConfiguredBytes =>
        double.TryParse(Environment.GetEnvironmentVariable("PREFPIPE_DEVICE_MEMORY_GIB"), NumberStyles.Float, CultureInfo.InvariantCulture, out double gib)
            ? (long)(gib * (1L << 30)) : null;

    /// <summary>NVML's view of GPU <paramref name="index"/> (NVML's order, which is CUDA's unless CUDA_DEVICE_ORDER says otherwise), or null without NVML.</summary>
    public static GpuMemory? Gpu(uint index = 0)
    {
        if (!NvmlReady.Value) return null;
        try
        {
            if (nvmlDeviceGetHandleByIndex_v2(index, out var handle) != 0) return null;
            var info = new NvmlMemory();
            if (nvmlDeviceGetMemoryInfo(handle, ref info) != 0) return null;
            return new GpuMemory((long)info.Total, (long)info.Free, (long)info.Used);
        }
        catch (DllNotFoundException) { return null; }
        catch (EntryPointNotFoundException) { return null; }
    }

    // NVML is initialised once per process (its init is reference-counted; nothing here shuts it down).
    private static readonly Lazy<bool> NvmlReady = new(() =>
    {
        try { return nvmlInit_v2() == 0; }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; }
    });

    private static long? MemAvailable()
    {
        const string meminfo = "/proc/meminfo";
        if (!File.Exists(meminfo)) return null;
        foreach (var line in File.ReadLines(meminfo))
        {
            if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;   // kB
        }
        return null;
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
