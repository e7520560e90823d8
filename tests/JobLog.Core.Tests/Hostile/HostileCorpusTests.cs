using System.Net;
using System.Net.Http.Headers;
using JobLog.Testing;
using JobLog.Testing.Hostile;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.Core.Tests.Hostile;

/// <summary>
/// The hostile-input corpus through the outbound-request path (request and response bodies) and the command path
/// (arguments, console output, ILogger output with a structured <c>{Password}</c>, the exception): every row is
/// there, the caller sees what it would without JobLog, and no planted secret is in the SQLite file or PostgreSQL rows.
/// </summary>
[NonParallelizable]
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class HostileCorpusTests(LedgerProvider provider)
{
    private static IEnumerable<HostileCase> Cases() => HostileCase.All();

    [TestCaseSource(nameof(Cases))]
    public async Task OutboundRequestAndCommand_WithAHostilePayload_AreRecordedAndNoSecretReachesTheLedger(HostileCase hostile)
    {
        var ledger = await Ledgers.CreateAsync(provider);
        var partner = new EchoHandler();
        var host = await LedgerHost.StartAsync(ledger, services: s =>
            s.AddHttpClient("partner").ConfigurePrimaryHttpMessageHandler(() => partner).AddJobLogging(slug: "partner"));
        var realOut = Console.Out;
        try
        {
            // Outbound: the partner refuses and echoes the payload back.
            var client = host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("partner");
            using var request = new HttpRequestMessage(HttpMethod.Post, "https://partner.example/login") { Content = new ByteArrayContent(hostile.Payload) };
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(hostile.ContentType);
            using var response = await client.SendAsync(request);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(await response.Content.ReadAsByteArrayAsync(), Is.EqualTo(hostile.Payload), "the caller reads the partner's real body");

            // Command: the payload as an argument, on the console, in a log call, and as the exception it fails with.
            using var console = new StringWriter();
            Console.SetOut(console);
            var logger = host.Services.GetRequiredService<ILogger<HostileCorpusTests>>();
            var commands = host.Services.GetRequiredService<CommandLogger>();
            var thrown = Assert.ThrowsAsync<InvalidOperationException>(() => commands.RunAsync(
                "hostile",
                ["--input", hostile.Text, "--password", "-" + hostile.Secrets[0], "--secret:" + hostile.Secrets[0], "-p", hostile.Secrets[0]],
                _ =>
                {
                    Console.WriteLine(hostile.Text);
                    logger.LogWarning("Login by {User} with {Password}: {Body}", "ann", hostile.Secrets[0], hostile.Text);
                    throw new InvalidOperationException("refused: " + hostile.Text);
                }));
            Assert.That(thrown!.Message, Is.EqualTo("refused: " + hostile.Text), "the command's own exception, unchanged");
            Assert.That(console.ToString(), Does.Contain(hostile.Text), "the console still got the output");

            await host.FlushAsync();
            var output = await host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().SingleAsync());
            Assert.That(output.ResponseCode, Is.EqualTo(401));
            Assert.That(output.Status, Is.EqualTo(RequestLogStatus.Warning));
            Assert.That(output.RequestBody, Is.Not.Null.And.Not.Empty);
            var command = await host.QueryAsync(db => db.CommandLogs.AsNoTracking().SingleAsync());
            Assert.That(command.IsSuccessful, Is.False);
            Assert.That(command.Stop, Is.Not.Null);
            Assert.That(command.ErrorMessage, Does.StartWith("System.InvalidOperationException: refused: "));
            Assert.That(command.Output, Does.Contain("Login by ann with [Filtered]"));
            Assert.That(command.Input, Does.StartWith("--input "));
        }
        finally
        {
            Console.SetOut(realOut);
            await host.Host.StopAsync();
        }

        try
        {
            if (provider == LedgerProvider.Sqlite)
            {
                HostileCase.AssertNotInSqliteFile(ledger, hostile.Secrets);
            }
            else
            {
                await HostileCase.AssertNotInPostgresAsync(ledger, hostile.Secrets);
            }
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    private sealed class EchoHandler : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = await request.Content!.ReadAsByteArrayAsync(cancellationToken);
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = request.Content.Headers.ContentType;
            return new HttpResponseMessage(HttpStatusCode.Unauthorized) { Content = content };
        }
    }
}
