using System.Diagnostics;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Generation;
using static TorchSharp.torch;
namespace PrefPipe.Models.Tests.Decoders;
public sealed class TmpTiming(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void Time()
    {
        using var model = CausalLM.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy"), CPU);
        var requests = Enumerable.Range(0, 960).Select(i => new GenerationRequest(Enumerable.Range(0, 10 + i % 30).Select(t => 2 + (37 * i + 11 * t) % 500).ToList(), 1000 + i)).ToList();
        var options = new GenerationOptions { MaxNewTokens = 48, Temperature = 1.0 };
        for (int round = 0; round < 2; round++)
        {
            var g1 = new TextGenerator(model, 1);
            var sw = Stopwatch.StartNew();
            foreach (var chunk in requests.Chunk(64)) g1.Generate(chunk, options);
            output.WriteLine($"static-ish chunks: {sw.ElapsedMilliseconds} ms steps {g1.Counters.DecodingSteps} rowsteps {g1.Counters.RowSteps} util {g1.Counters.Utilisation:F3}");
            var g2 = new TextGenerator(model, 1);
            sw.Restart();
            g2.Generate(requests, options, 64, null);
            output.WriteLine($"continuous 64: {sw.ElapsedMilliseconds} ms steps {g2.Counters.DecodingSteps} rowsteps {g2.Counters.RowSteps} util {g2.Counters.Utilisation:F3} prefills {g2.Counters.Prefills} moves {g2.Counters.WindowMoves}");
        }
    }
}
