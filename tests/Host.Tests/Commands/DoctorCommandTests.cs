using System.Text.Json;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

public sealed class DoctorCommandTests
{
    [Fact]
    public async Task Doctor_OnThisMachine_ReportsLibTorchAndOnnxCpuAndExitsZero()
    {
        var console = new TestConsole().Width(250);
        string store = Directory.CreateTempSubdirectory("prefpipe-doctor-").FullName;

        int exit = await Cli.InvokeAsync(["doctor", "--json", "--storage", store], console);

        Assert.Equal(0, exit);
        using var doc = JsonDocument.Parse(console.Output);
        var checks = doc.RootElement.EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal("Ok", checks["libtorch"].GetProperty("status").GetString());
        Assert.Contains("libtorch 2.10", checks["libtorch"].GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("CPUExecutionProvider", checks["ONNX Runtime"].GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("1.31.1", checks["ONNX Runtime"].GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("Ok", checks["storage"].GetProperty("status").GetString());
    }

    [Fact]
    public async Task Doctor_UnwritableStorage_FailsWithFixAndNonZeroExit()
    {
        var console = new TestConsole().Width(250);

        int exit = await Cli.InvokeAsync(["doctor", "--storage", "/proc/prefpipe-cannot-write-here"], console);

        Assert.Equal(1, exit);
        Assert.Contains("FAIL", console.Output, StringComparison.Ordinal);
        Assert.Contains("not writable", console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Doctor_RequireCudaOnCpuMachine_FailsAndSaysHowToGetCuda()
    {
        var console = new TestConsole().Width(250);
        string store = Directory.CreateTempSubdirectory("prefpipe-doctor-").FullName;

        int exit = await Cli.InvokeAsync(["doctor", "--require-cuda", "--storage", store], console);

        Assert.Equal(1, exit);
        Assert.Contains("TorchBackend=cuda", console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invoke_UnknownCommand_ExitsWithUsageCode()
    {
        int exit = await Cli.InvokeAsync(["no-such-command"], new TestConsole());

        Assert.Equal(2, exit);
    }
}
