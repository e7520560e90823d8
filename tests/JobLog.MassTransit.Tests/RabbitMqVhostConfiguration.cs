using JobLog.Testing;
using MassTransit;

namespace JobLog.MassTransit.Tests;

/// <summary>A bus on a test's throwaway virtual host, as the suite's RabbitMQ user.</summary>
internal static class RabbitMqVhostConfiguration
{
    public static void Host(this IRabbitMqBusFactoryConfigurator cfg, RabbitMqVhost vhost) =>
        cfg.Host(RabbitMqVhost.Host, vhost.Name, h =>
        {
            h.Username("guest");
            h.Password("guest");
        });
}
