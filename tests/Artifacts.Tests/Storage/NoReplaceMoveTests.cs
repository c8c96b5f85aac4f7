using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Storage;

public sealed class NoReplaceMoveTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("prefpipe-noreplace-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Staged(int writer)
    {
        string path = Path.Combine(_dir, $"stage-{writer}.partial");
        File.WriteAllText(path, $"writer-{writer}");
        return path;
    }

    [Fact]
    public Task TryMove_RacingWriters_ExactlyOneWinsAndNoStagingFileIsLeft() => RaceAsync(NoReplaceMove.TryMove);

    // The last resort for file systems with neither hard links nor RENAME_NOREPLACE, exercised directly.
    [Fact]
    public Task TryCopyExclusive_RacingWriters_ExactlyOneWinsWithItsWholeContent() => RaceAsync(NoReplaceMove.TryCopyExclusive);

    /// <summary>16 writers released together publish their staged files under one name: one wins, with its whole content.</summary>
    private async Task RaceAsync(Func<string, string, bool> publish)
    {
        string target = Path.Combine(_dir, "claim.json");
        var staged = Enumerable.Range(0, 16).Select(Staged).ToArray();
        using var start = new ManualResetEventSlim();
        var writers = staged.Select((s, i) => Task.Run(() => { start.Wait(); return (Index: i, Won: publish(s, target)); })).ToArray();
        start.Set();
        var results = await Task.WhenAll(writers);

        var winner = Assert.Single(results, r => r.Won);
        Assert.Equal($"writer-{winner.Index}", File.ReadAllText(target));
        Assert.Equal(["claim.json"], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void ExclusiveCreate_WhileItsWriterHoldsIt_ReadersGetInUseNotPartialContent()
    {
        // What TryCopyExclusive relies on: FileShare.None is enforced against other openers (advisory locks on Unix).
        string target = Path.Combine(_dir, "claim.json");
        using (var holding = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            holding.Write("half"u8);
            Assert.Throws<IOException>(() => new FileStream(target, FileMode.Open, FileAccess.Read, FileShare.Read).Dispose());
        }
        Assert.Equal("half", File.ReadAllText(target));
    }
}
