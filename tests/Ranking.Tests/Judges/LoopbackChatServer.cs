using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace PrefPipe.Ranking.Tests.Judges;

/// <summary>A real HTTP server on 127.0.0.1 that answers chat-completion requests with a handler's reply.</summary>
internal sealed class LoopbackChatServer : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Func<Request, Reply> _handler;
    private readonly Task _loop;
    private readonly CancellationTokenSource _stop = new();

    public sealed record Request(string Path, string Query, IReadOnlyDictionary<string, string> Headers, JsonElement Body)
    {
        public string UserMessage => Body.GetProperty("messages").EnumerateArray().Last().GetProperty("content").GetString()!;
    }

    public sealed record Reply(int Status, string? Content = null, TimeSpan? Delay = null, int? RetryAfterSeconds = null, string? RawBody = null);

    public ConcurrentQueue<Request> Requests { get; } = new();

    public Uri BaseUri { get; }

    public LoopbackChatServer(Func<Request, Reply> handler)
    {
        _handler = handler;
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        BaseUri = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(BaseUri.ToString());
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync().ConfigureAwait(false); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (HttpListenerException) { return; }
            catch (ObjectDisposedException) { return; }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
        string body = await reader.ReadToEndAsync().ConfigureAwait(false);
        var headers = context.Request.Headers.AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => context.Request.Headers[k]!, StringComparer.OrdinalIgnoreCase);
        var request = new Request(context.Request.Url!.AbsolutePath, context.Request.Url.Query, headers, JsonDocument.Parse(body).RootElement.Clone());
        Requests.Enqueue(request);
        var reply = _handler(request);
        try
        {
            if (reply.Delay is { } delay) await Task.Delay(delay, _stop.Token).ConfigureAwait(false);
            context.Response.StatusCode = reply.Status;
            if (reply.RetryAfterSeconds is int s) context.Response.Headers["Retry-After"] = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
            string json = reply.RawBody ?? JsonSerializer.Serialize(new { choices = new[] { new { message = new { role = "assistant", content = reply.Content ?? "" } } } });
            byte[] bytes = Encoding.UTF8.GetBytes(json);
            context.Response.ContentType = "application/json";
            await context.Response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
            context.Response.Close();
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpListenerException or ObjectDisposedException or IOException)
        {
            // The client gave up (timeout test) or the server is stopping.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        _listener.Close();
        try { await _loop.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); }
        catch (TimeoutException) { }
        _stop.Dispose();
    }
}
