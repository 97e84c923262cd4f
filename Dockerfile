# Builds the single trafficmanager binary; temporal-compose.yml runs it as
# api, resolver and worker.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/trafficmanager ./cmd/trafficmanager

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/trafficmanager /usr/local/bin/trafficmanager
ENTRYPOINT ["/usr/local/bin/trafficmanager"]
