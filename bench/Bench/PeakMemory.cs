namespace PrefPipe.Bench;

/// <summary>Process memory figures for benchmarks: peak resident set (VmHWM) from /proc, and the managed heap.</summary>
public static class PeakMemory
{
    /// <summary>Peak resident set size of this process so far, in MiB (Linux), or -1 when unknown.</summary>
    public static double PeakRssMiB()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return -1;
        foreach (var line in File.ReadLines(status))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
            }
        }
        return -1;
    }

    /// <summary>Resets the kernel's peak-RSS counter (VmHWM) so the next reading covers only what follows.</summary>
    public static void ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
