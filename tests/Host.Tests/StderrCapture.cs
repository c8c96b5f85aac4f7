namespace PrefPipe.Host.Tests;

/// <summary>
/// Captures what commands write to <see cref="Console.Error"/>. The console is process-wide and test classes run in
/// parallel, so captures take turns: without the gate one test's errors land in another test's writer.
/// </summary>
internal sealed class StderrCapture : IAsyncDisposable
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private readonly StringWriter _writer = new();
    private readonly TextWriter _previous;

    private StderrCapture()
    {
        _previous = Console.Error;
        Console.SetError(_writer);
    }

    /// <summary>Waits for its turn, then redirects standard error until disposed.</summary>
    public static async Task<StderrCapture> StartAsync()
    {
        await Gate.WaitAsync();
        return new StderrCapture();
    }

    /// <summary>What was written so far.</summary>
    public override string ToString() => _writer.ToString();

    public ValueTask DisposeAsync()
    {
        Console.SetError(_previous);
        _writer.Dispose();
        Gate.Release();
        return ValueTask.CompletedTask;
    }
}
