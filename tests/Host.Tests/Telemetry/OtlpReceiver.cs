using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PrefPipe.Host.Tests.Telemetry;

/// <summary>A span as OTLP carried it: its name, ids, and string/int/bool attributes.</summary>
internal sealed record ReceivedSpan(string Name, string TraceId, string SpanId, string ParentSpanId, IReadOnlyDictionary<string, object> Attributes, int StatusCode);

/// <summary>
/// An OTLP/HTTP receiver on loopback (Kestrel): accepts <c>POST /v1/traces</c> and <c>/v1/metrics</c> with protobuf bodies,
/// as a collector does, and decodes the spans of ExportTraceServiceRequest (resource_spans 1 → scope_spans 2 → spans 2;
/// Span: trace_id 1, span_id 2, parent_span_id 4, name 5, attributes 9, status 15; KeyValue: key 1, value 2; AnyValue:
/// string 1, bool 2, int 3, double 4) with a small protobuf walker. Metric requests are counted, not decoded.
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    public ConcurrentQueue<ReceivedSpan> Spans { get; } = new();

    public ConcurrentQueue<string> MetricNames { get; } = new();

    public string Endpoint { get; }

    private OtlpReceiver(WebApplication app, string endpoint) => (_app, Endpoint) = (app, endpoint);

    public static async Task<OtlpReceiver> StartAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(o => o.Listen(System.Net.IPAddress.Loopback, 0));
        builder.Services.AddRoutingCore();
        builder.Logging.ClearProviders();
        var app = builder.Build();
        OtlpReceiver? receiver = null;
        app.MapPost("/v1/traces", async (HttpContext context) =>
        {
            foreach (var span in DecodeSpans(await ReadAsync(context))) receiver!.Spans.Enqueue(span);
            context.Response.ContentType = "application/x-protobuf";
        });
        app.MapPost("/v1/metrics", async (HttpContext context) =>
        {
            // MetricsData → resource_metrics 1 → scope_metrics 2 → metrics 2 → name 1.
            foreach (var rm in Fields(await ReadAsync(context)).Where(f => f.Field == 1))
                foreach (var sm in Fields(rm.Bytes).Where(f => f.Field == 2))
                    foreach (var m in Fields(sm.Bytes).Where(f => f.Field == 2))
                        receiver!.MetricNames.Enqueue(Encoding.UTF8.GetString(Fields(m.Bytes).First(f => f.Field == 1).Bytes));
            context.Response.ContentType = "application/x-protobuf";
        });
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        receiver = new OtlpReceiver(app, address);
        return receiver;
    }

    private static async Task<byte[]> ReadAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        return body.ToArray();
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    private static IEnumerable<ReceivedSpan> DecodeSpans(byte[] request)
    {
        foreach (var rs in Fields(request).Where(f => f.Field == 1))
            foreach (var ss in Fields(rs.Bytes).Where(f => f.Field == 2))
                foreach (var span in Fields(ss.Bytes).Where(f => f.Field == 2))
                {
                    var fields = Fields(span.Bytes).ToList();
                    string Hex(int n) => Convert.ToHexStringLower(fields.FirstOrDefault(f => f.Field == n).Bytes ?? []);
                    var attributes = new Dictionary<string, object>(StringComparer.Ordinal);
                    foreach (var kv in fields.Where(f => f.Field == 9))
                    {
                        var parts = Fields(kv.Bytes).ToList();
                        string key = Encoding.UTF8.GetString(parts.First(p => p.Field == 1).Bytes);
                        var value = Fields(parts.First(p => p.Field == 2).Bytes).Single();
                        attributes[key] = value.Field switch
                        {
                            1 => Encoding.UTF8.GetString(value.Bytes),
                            2 => value.Number != 0,
                            3 => (long)value.Number,
                            4 => BitConverter.Int64BitsToDouble((long)value.Number),
                            _ => $"field {value.Field}",
                        };
                    }
                    var status = fields.FirstOrDefault(f => f.Field == 15).Bytes;
                    int code = status is null ? 0 : (int)(Fields(status).FirstOrDefault(f => f.Field == 3).Number);
                    yield return new ReceivedSpan(Encoding.UTF8.GetString(fields.First(f => f.Field == 5).Bytes), Hex(1), Hex(2), Hex(4), attributes, code);
                }
    }

    private static IEnumerable<(int Field, byte[] Bytes, ulong Number)> Fields(byte[] message)
    {
        int at = 0;
        while (at < message.Length)
        {
            ulong key = Varint(message, ref at);
            int field = (int)(key >> 3);
            switch ((int)(key & 7))
            {
                case 0: yield return (field, null!, Varint(message, ref at)); break;
                case 1: yield return (field, null!, BinaryPrimitives.ReadUInt64LittleEndian(message.AsSpan(at))); at += 8; break;
                case 5: yield return (field, null!, BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(at))); at += 4; break;
                case 2:
                    int length = (int)Varint(message, ref at);
                    yield return (field, message[at..(at + length)], 0);
                    at += length;
                    break;
                default: throw new InvalidDataException($"wire type {key & 7} at byte {at}");
            }
        }
    }

    private static ulong Varint(byte[] bytes, ref int at)
    {
        ulong v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = bytes[at++];
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return v;
        }
    }
}
